// Login flows in headless Chromium, for t/72-browser-flows.t and
// t/73-browser-saml-slow.t.  The test starts Chromium (by pid, with a
// debugging port) and the servers; this script connects with
// playwright-core, runs the flows it is given, each in a fresh browser
// context, and prints one JSON object of observations on stdout:
//
//   node t/browser/flows.mjs ARGS.json
//
//   ARGS: { cdp: URL, shots: DIR, redis: PORT,
//           flows: [ { kind, name, cookie, ... }, ... ] }
//   OUT:  { errors: [...], <name>: { ...observations... }, ... }
//
// Kinds:
//   oidc          start at base+start, log in at oidc-provider's form, land
//                 back; then logout (base+logout), then base+after again
//   saml          start at base+start, log in at SimpleSAMLphp (after
//                 wait_ms at its login form, if given), land back; with
//                 drop_cookie, that cookie is deleted while the user is at
//                 the IdP, and what the user then sees is recorded
//   saml_idp      start at the IdP's IdP-initiated URL (idp_url), log in,
//                 land on base
//
// "cookie" names the session cookie, whose Redis record is looked at on
// landing (and after logout).  The assertions are in the .t files; this
// only observes.  A flow that fails records its error and the page it
// stopped on, and the next flow still runs.  Every final page is
// photographed into "shots".

import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'node', 'package.json'));
const { chromium } = require('playwright-core');

const opt = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = { errors: [] };
const T = 20000;

async function shot(page, name) {
  try {
    await page.screenshot({ path: path.join(opt.shots, `${name}.png`), fullPage: true });
  } catch (e) {
    out.errors.push(`screenshot ${name}: ${e}`);
  }
}

// What the main frame navigated through: every document response,
// redirects included, in order, with the Set-Cookie headers as sent (the
// cookie jar cannot tell SameSite=Lax from no SameSite at all).
function recordNavigations(page) {
  const chain = [];
  chain.pending = [];
  page.on('response', (res) => {
    const req = res.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      const entry = { method: req.method(), url: res.url(), status: res.status() };
      chain.push(entry);
      chain.pending.push(res.headersArray().then((hs) => {
        entry.set_cookie = hs.filter((h) => h.name.toLowerCase() === 'set-cookie').map((h) => h.value);
      }, () => {}));
    }
  });
  return chain;
}

// The page as the user sees it: status of the last document, URL, text,
// links.
async function look(page, chain) {
  await page.waitForLoadState('load', { timeout: T });
  await Promise.all(chain.pending || []);
  const last = chain.length ? chain[chain.length - 1] : {};
  return {
    url: page.url(),
    status: last.status,
    title: await page.title(),
    text: (await page.evaluate(() => document.body ? document.body.innerText : '')).trim(),
    links: await page.$$eval('a[href]', (as) => as.map((a) => ({ href: a.href, text: a.textContent.trim() }))),
  };
}

async function cookies(context) {
  return (await context.cookies()).map((c) => ({
    name: c.name, value: c.value, domain: c.domain, path: c.path,
    httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, expires: c.expires,
  }));
}

// One Redis command (RESP), for what Redis holds at a given moment of a
// flow: the test reads it only after the browser is done.
function redis(...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(opt.redis, '127.0.0.1');
    let buf = '';
    const done = (v) => { sock.end(); resolve(v); };
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('data', (d) => {
      buf += d;
      let m;
      if ((m = /^:(-?\d+)\r\n$/.exec(buf))) {
        done(Number(m[1]));
      } else if (/^\$-1\r\n$/.test(buf)) {
        done(null);
      } else if ((m = /^\$(\d+)\r\n/.exec(buf)) && buf.length >= m[0].length + Number(m[1]) + 2) {
        done(buf.substr(m[0].length, Number(m[1])));
      } else if ((m = /^[+-](.*)\r\n$/.exec(buf))) {
        done(m[1]);
      }
    });
    sock.write(`*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join('')}`);
  });
}

// The session's Redis record: does it exist, and its public id.
async function sessionInRedis(cookie) {
  if (!cookie) {
    return null;
  }
  const key = `identity:session:${crypto.createHash('sha256').update(cookie.value).digest('hex').slice(0, 32)}`;
  return { exists: await redis('EXISTS', key), id: await redis('HGET', key, 'id') };
}

async function oidcLogin(page, o, user) {
  await page.waitForSelector('input[name=login]', { timeout: T });
  const at = page.url();
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', `${user}-password`);
  await page.click('button[type=submit]');
  return at;
}

async function samlLogin(page, o, r) {
  await page.waitForSelector('input[name=password]', { timeout: T });
  r.login_page = page.url();
  r.cookies_at_idp = await cookies(page.context());
  if (o.wait_ms) {
    // the user reads, goes for coffee, comes back
    await page.waitForTimeout(o.wait_ms);
  }
  if (o.drop_cookie) {
    await page.context().clearCookies({ name: o.drop_cookie });
    r.dropped = !(await page.context().cookies()).some((c) => c.name === o.drop_cookie);
  }
  const user = o.user || 'alice';
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', `${user}-password`);
  r.submitted_at = new Date().toISOString();
  await Promise.all([
    page.waitForNavigation({ timeout: T }),
    page.press('input[name=password]', 'Enter'),
  ]);
}

// Waits until the browser is back on the site, after the IdP's
// auto-submitting form and whatever redirects follow: at "want" when given,
// else on any page of the site.
async function backAt(page, base, want) {
  const origin = new URL(base).origin;
  await page.waitForURL(want || ((u) => u.origin === origin), { timeout: T });
  await page.waitForLoadState('load', { timeout: T });
}

const flows = {
  async oidc(context, page, o, r, chain) {
    const start = o.base + o.start;
    await page.goto(start, { timeout: T });
    r.login_page = await oidcLogin(page, o, o.user || 'alice');
    await page.waitForURL(start, { timeout: T });
    r.landed = await look(page, chain);
    r.cookies = await cookies(context);
    r.redis = await sessionInRedis(r.cookies.find((c) => c.name === o.cookie));
    r.chain = chain.splice(0);
    await shot(page, `${o.name}-1-landed`);

    // logout, then the protected URL again
    await page.goto(o.base + o.logout, { timeout: T });
    await page.waitForURL(o.base + o.logout_lands, { timeout: T });
    r.logged_out = await look(page, chain);
    r.cookies_after_logout = await cookies(context);
    r.redis_after_logout = await sessionInRedis(r.cookies.find((c) => c.name === o.cookie));
    r.logout_chain = chain.splice(0);
    await shot(page, `${o.name}-2-logged-out`);

    const again = o.base + o.after;
    await page.goto(again, { timeout: T });
    // the IdP still knows the user, so it may send them straight back
    await page.waitForURL((u) => u.href === again || u.href.startsWith(`${o.issuer}/interaction/`),
      { timeout: T });
    r.again = await look(page, chain);
    r.again_chain = chain.splice(0);
    r.cookies_again = await cookies(context);
    await shot(page, `${o.name}-3-again`);
  },

  async saml(context, page, o, r, chain) {
    const start = o.base + o.start;
    await page.goto(start, { timeout: T });
    r.cookies_before_idp = await cookies(context);
    await samlLogin(page, o, r);
    await backAt(page, o.base, o.drop_cookie ? null : start);
    r.landed = await look(page, chain);
    r.cookies = await cookies(context);
    r.redis = await sessionInRedis(r.cookies.find((c) => c.name === o.cookie));
    r.chain = chain.splice(0);
    await shot(page, `${o.name}-landed`);
  },

  async saml_idp(context, page, o, r, chain) {
    await page.goto(o.idp_url, { timeout: T });
    await samlLogin(page, o, r);
    await backAt(page, o.base, o.base + o.lands);
    r.landed = await look(page, chain);
    r.cookies = await cookies(context);
    r.redis = await sessionInRedis(r.cookies.find((c) => c.name === o.cookie));
    r.chain = chain.splice(0);
    await shot(page, `${o.name}-landed`);
  },
};

const browser = await chromium.connectOverCDP(opt.cdp, { timeout: T });

try {
  for (const o of opt.flows) {
    const r = out[o.name] = { errors: [] };
    const context = await browser.newContext({ ignoreHTTPSErrors: true,
      viewport: { width: 1024, height: 700 } });
    const page = await context.newPage();
    const chain = recordNavigations(page);
    page.on('pageerror', (e) => r.errors.push(`page: ${e}`));
    try {
      await flows[o.kind](context, page, o, r, chain);
    } catch (e) {
      r.errors.push(String(e && e.stack || e));
      r.chain = (r.chain || []).concat(chain);
      try {
        r.failed_at = await look(page, r.chain);
        await shot(page, `${o.name}-failure`);
      } catch (e2) { /* the page may be gone */ }
    }
    await context.close();
  }
} catch (e) {
  out.errors.push(String(e && e.stack || e));
} finally {
  // only the connection: the test stops Chromium by its pid
  await browser.close();
}

process.stdout.write(JSON.stringify(out) + '\n');
