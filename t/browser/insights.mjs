// Drives the dashboard's pictures in headless Chromium (Debian's package)
// with playwright-core, for t/99-dashboard-insights.t, which starts the
// servers, makes the logins and checks what this prints: one JSON object of
// observations on stdout.
//
//   node t/browser/insights.mjs '{"base": URL, "shots": DIR,
//                                 "user": "au_...", "risky": "as_..."}'
//
// An admin logs in to the dashboard through the IdP, then looks at the
// overview (the logins chart in both ranges, the world map), the sessions
// page with each filter, a session with risk signals, the activity page and
// a user's recent activity, at a laptop's width and a phone's.  Every
// request the page makes after the login is recorded (they must all be to
// the dashboard's own origin), and so is every CSP violation, console error
// and uncaught exception.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'node', 'package.json'));
const { chromium } = require('playwright-core');

const opt = JSON.parse(process.argv[2]);
const out = { errors: [], console_errors: [], csp: [], requests: [] };
const T = 15000;
const admin = `${opt.base}/admin/`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

let page = null;

async function shot(name) {
  await page.screenshot({ path: path.join(opt.shots, `${name}.png`), fullPage: true });
}

const squash = (s) => (s || '').replace(/\s+/g, ' ').trim();

// the rows of a table as { data-* attributes, text }
async function rows(sel) {
  return page.$$eval(sel, (els) => els.map((e) => ({
    ...e.dataset, text: e.textContent.replace(/\s+/g, ' ').trim(),
  })));
}

// after a navigation: the pager has answered (rows, or the empty state)
async function listed(scope) {
  await page.waitForFunction((s) => {
    // the list and its pager (which shows the empty and error states)
    const v = document.querySelector(s)?.parentElement;
    return document.getElementById('view').dataset.route === location.hash
      && v && !v.querySelector('[data-testid=loading]')
      && (v.querySelector('tbody tr') || v.querySelector('[data-testid=empty]')
          || v.querySelector('[data-testid=error]'));
  }, scope, { timeout: T });
}

async function go(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  page = await ctx.newPage();

  // CSP violations, as the page sees them (an init script runs before the
  // page's own, and is not subject to its policy)
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on('console', (m) => {
    if (/Content.Security.Policy/i.test(m.text())) {
      out.csp.push(m.text());
    } else if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) {
      out.console_errors.push(m.text());
    }
  });
  page.on('pageerror', (e) => out.console_errors.push(String(e)));

  await page.goto(admin);
  await page.waitForSelector('input[name=login]', { timeout: T });
  await page.fill('input[name=login]', 'admin');
  await page.fill('input[name=password]', 'admin-password');
  await page.click('button[type=submit]');
  await page.waitForURL(`${admin}**`, { timeout: T });
  await page.waitForSelector('[data-testid=user-row]', { timeout: T });

  // from here on, every request the page makes is recorded
  page.on('request', (r) => out.requests.push(r.url()));
  await page.reload();
  await page.waitForSelector('[data-testid=user-row]', { timeout: T });

  // ------------------------------------------------------------ navigation
  // the keyboard: Tab from the top reaches the sections; Enter follows
  out.nav = await page.$$eval('.mainnav a', (as) => as.map((a) => a.textContent.trim()));
  await page.focus('[data-testid=nav-users]');
  await page.keyboard.press('Shift+Tab');
  out.nav_focus = await page.evaluate(() => document.activeElement.dataset.testid);
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=logins]', { timeout: T });
  out.nav_hash = await page.evaluate(() => location.hash);
  out.nav_current = await page.getAttribute('[aria-current=page][data-section]', 'data-testid');

  // ------------------------------------------------------------ overview
  await page.waitForSelector('[data-testid=logins] [data-testid=logins-chart], '
    + '[data-testid=logins] [data-testid=empty], [data-testid=logins] [data-testid=error]', { timeout: T });
  await page.waitForSelector('[data-testid=sessions-map] [data-testid=world-map], '
    + '[data-testid=sessions-map] [data-testid=error]', { timeout: T });

  const chart = async () => ({
    bars: await page.$$eval('[data-testid=chart-bar]', (bs) => bs.map((b) => ({
      start: b.dataset.start, success: Number(b.dataset.success),
      failure: Number(b.dataset.failure),
      drawn: b.querySelectorAll('.bar-success, .bar-failure').length,
      title: b.querySelector('title').textContent,
    }))),
    summary: squash(await page.textContent('[data-testid=logins]')),
    empty: await page.$('[data-testid=logins] [data-testid=empty]') !== null,
  });

  out.chart_24h = await chart();
  out.map = {
    countries: await page.$$eval('[data-testid=map-country]', (ps) => ps.map((p) => ({
      cc: p.dataset.cc, count: Number(p.dataset.count), cls: p.getAttribute('class'),
      title: p.querySelector('title').textContent,
      fill: getComputedStyle(p).fill,
    }))),
    unshaded_fill: await page.$eval('[data-testid=world-map] path.country:not(.shade)',
      (p) => getComputedStyle(p).fill),
    paths: await page.$$eval('[data-testid=world-map] path.country', (ps) => ps.length),
    points: await page.$$eval('[data-testid=map-point]', (cs) => cs.map((c) => ({
      cc: c.dataset.cc, count: Number(c.dataset.count), lat: Number(c.dataset.lat),
      lon: Number(c.dataset.lon), cx: Number(c.getAttribute('cx')),
      cy: Number(c.getAttribute('cy')), title: c.querySelector('title').textContent,
    }))),
    list: await page.$$eval('[data-testid=country-list] li', (ls) => ls.map((l) => ({
      cc: l.dataset.cc, text: l.textContent.replace(/\s+/g, ' ').trim(),
      href: l.querySelector('a').getAttribute('href'),
    }))),
    note: squash(await page.textContent('[data-testid=map-note]')),
  };
  // a country's tooltip: hovering the shape shows its <title>
  await shot('01-overview');

  // the 7-day range, by keyboard
  await page.focus('[data-testid=range-7d]');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash === '#/overview?range=7d', null, { timeout: T });
  await page.waitForSelector('[data-testid=range-7d][aria-current=true]', { timeout: T });
  await page.waitForSelector('[data-testid=logins] [data-testid=logins-chart], '
    + '[data-testid=logins] [data-testid=empty]', { timeout: T });
  out.chart_7d = await chart();
  await shot('02-overview-7d');

  // a country in the list leads to its sessions
  if (out.map.list.length) {
    const first = out.map.list[0];
    await page.click(`[data-testid=country-list] li[data-cc=${first.cc}] a`);
    await page.waitForSelector('[data-testid=session-filters]', { timeout: T });
    await listed('.results');
    out.from_map = { cc: first.cc, hash: await page.evaluate(() => location.hash),
      rows: await rows('[data-testid=session-row]') };
  }

  // ------------------------------------------------------------ sessions
  await go('#/sessions');
  await page.waitForFunction(() => location.hash === '#/sessions'
    && !document.querySelector('[data-testid=filter-clear]'), null, { timeout: T });
  await listed('.results');
  out.sessions_all = await rows('[data-testid=session-row]');
  out.sessions_columns = await page.$$eval('[data-testid=sessions-table] th', (ths) => ths.map((t) => t.textContent));
  await shot('03-sessions');

  // provider: the select, filled from the identities' providers
  await page.waitForSelector('[data-testid=filter-provider] option[value=other]', { state: 'attached', timeout: T });
  out.provider_options = await page.$$eval('[data-testid=filter-provider] option', (os) => os.map((o) => o.value));
  await page.selectOption('[data-testid=filter-provider]', 'other');
  await page.waitForFunction(() => location.hash === '#/sessions?provider=other', null, { timeout: T });
  await listed('.results');
  out.sessions_provider = await rows('[data-testid=session-row]');
  await shot('04-sessions-provider');

  // country: typed, Enter; combines with the provider
  await page.fill('[data-testid=filter-country]', 'fr');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash === '#/sessions?provider=other&country=FR', null, { timeout: T });
  await listed('.results');
  out.sessions_provider_country = await rows('[data-testid=session-row]');
  out.sessions_provider_country_empty = squash(await page.textContent('.card-table'));

  await go('#/sessions?country=FR');
  await page.waitForFunction(() => document.querySelector('[data-testid=filter-country]')?.value === 'FR'
    && document.querySelector('[data-testid=filter-provider]')?.value === '', null, { timeout: T });
  await listed('.results');
  out.sessions_country = await rows('[data-testid=session-row]');
  await shot('05-sessions-country');

  await go('#/sessions');
  await page.waitForFunction(() => !document.querySelector('[data-testid=filter-clear]'), null, { timeout: T });
  await listed('.results');
  await page.selectOption('[data-testid=filter-device]', 'Mobile');
  await page.waitForFunction(() => location.hash === '#/sessions?device=Mobile', null, { timeout: T });
  await listed('.results');
  out.sessions_device = await rows('[data-testid=session-row]');

  await go('#/sessions');
  await page.waitForFunction(() => !document.querySelector('[data-testid=filter-clear]'), null, { timeout: T });
  await listed('.results');
  await page.selectOption('[data-testid=filter-risk]', 'any');
  await page.waitForFunction(() => location.hash === '#/sessions?risk=any', null, { timeout: T });
  await listed('.results');
  out.sessions_risk = await rows('[data-testid=session-row]');
  out.risk_badges = await page.$$eval('[data-testid=session-row] [data-testid=risk-badge]',
    (bs) => bs.map((b) => ({ signal: b.dataset.signal, text: b.textContent, title: b.title })));
  await shot('06-sessions-risk');

  // ------------------------------------------------------------ a risky session
  if (opt.risky) {
    await go(`#/sessions/${opt.risky}`);
    await page.waitForSelector('[data-testid=session-detail]', { timeout: T });
    out.risky = {
      items: await page.$$eval('[data-testid=risk-item]', (is) => is.map((i) => ({
        signal: i.dataset.signal, text: i.textContent.replace(/\s+/g, ' ').trim() }))),
      from: squash(await page.$eval('[data-testid=travel-from]', (e) => e.textContent).catch(() => '')),
      to: squash(await page.$eval('[data-testid=travel-to]', (e) => e.textContent).catch(() => '')),
      map: await page.$eval('[data-testid=travel-map]', (m) => ({
        label: m.getAttribute('aria-label'),
        line: m.querySelectorAll('line.travel-line').length,
        dots: m.querySelectorAll('circle').length,
        shaded: [...m.querySelectorAll('path.shade-travel')].map((p) => p.dataset.cc),
      })).catch(() => null),
    };
    await page.$eval('[data-testid=risk], [data-testid=risk-none]', (e) => e.scrollIntoView());
    await shot('07-session-risk');
  }

  // ------------------------------------------------------------ activity
  await go('#/activity');
  await page.waitForSelector('[data-testid=filter-action]', { timeout: T });
  await listed('.results');
  out.activity = await rows('[data-testid=event-row]');
  out.activity_empty = squash(await page.textContent('.card-table'));
  await shot('08-activity');
  await page.selectOption('[data-testid=filter-action]', 'login');
  await page.waitForFunction(() => location.hash === '#/activity?action=login', null, { timeout: T });
  await listed('.results');
  out.activity_login = await rows('[data-testid=event-row]');
  out.activity_login_badges = await page.$$eval('[data-testid=event-action]',
    (bs) => bs.map((b) => ({ action: b.dataset.action, outcome: b.dataset.outcome, text: b.textContent })));

  // ------------------------------------------------------------ a user's page
  if (opt.user) {
    await go(`#/users/${opt.user}`);
    await page.waitForSelector('[data-testid=user-detail]', { timeout: T });
    await listed('[data-testid=user-activity]');
    await page.waitForSelector('[data-testid=user-detail] [data-testid=session-row]', { timeout: T });
    out.user_activity = await rows('[data-testid=user-activity] [data-testid=event-row]');
    out.user_activity_text = squash(await page.$eval('[data-testid=user-activity]',
      (e) => e.parentElement.textContent));
    out.user_session_badges = await page.$$eval('[data-testid=session-row] [data-testid=risk-badge]',
      (bs) => bs.map((b) => b.dataset.signal));
    await shot('09-user-activity');
  }

  // ------------------------------------------------------------ a phone
  await page.setViewportSize({ width: 390, height: 844 });
  await go('#/overview');
  await page.waitForSelector('[data-testid=world-map]', { timeout: T });
  await page.waitForSelector('[data-testid=logins] [data-testid=logins-chart], '
    + '[data-testid=logins] [data-testid=empty]', { timeout: T });
  out.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth
    > document.documentElement.clientWidth);
  await shot('10-overview-phone');
  await go('#/sessions');
  await listed('.results');
  await shot('11-sessions-phone');

  out.csp.push(...await page.evaluate(() => window.__csp));

  // the map's cap: a server with endless pages of sessions (the browser
  // answers app/sessions itself, so the module is not stubbed) is read for
  // 10 pages, and the page says that it counted the first 1,000
  await page.setViewportSize({ width: 1366, height: 900 });
  out.cap_requests = 0;
  await page.route((u) => u.pathname.endsWith('/admin/app/sessions'), (route) => {
    out.cap_requests++;
    const s = { id: `as_${String(out.cap_requests).padStart(32, '0')}`,
      browser_session: { location: { country_code: 'BR', latitude: -23.55, longitude: -46.63 } },
      risk: [] };
    route.fulfill({ contentType: 'application/json', body: JSON.stringify({
      application_sessions: Array(100).fill(s),
      next_page_uri: `${opt.base}/admin/app/sessions?limit=100&before_id=${s.id}` }) });
  });
  await go('#/activity');
  await page.waitForSelector('[data-testid=filter-action]', { timeout: T });
  await go('#/overview');
  await page.waitForSelector('[data-testid=map-note][data-capped=true]', { timeout: T });
  out.cap_note = squash(await page.textContent('[data-testid=map-note]'));
  out.cap_br = await page.getAttribute('[data-testid=map-country][data-cc=BR]', 'data-count');
  await page.unroute((u) => u.pathname.endsWith('/admin/app/sessions'));
  await ctx.close();
} catch (e) {
  out.errors.push(String(e && e.stack || e));
  if (page) {
    try {
      await shot('failure');
      out.failure_html = await page.content();
    } catch (e2) { /* the page may be gone */ }
  }
} finally {
  await browser.close();
}

process.stdout.write(JSON.stringify(out) + '\n');
