// Drives the Identities dashboard in headless Chromium (Debian's package)
// with playwright-core, for t/70-dashboard.t, which starts the servers and
// checks what this prints: one JSON object of observations on stdout.
//
//   node t/browser/dashboard.mjs '{"base": URL, "issuer": URL, "shots": DIR}'
//
// Two contexts: a user who logs in through the real IdP and reaches the
// upstream, and an admin who logs in to the dashboard, finds the user by
// search, opens the endpoint and the session, then deletes the user; the
// user's next navigation must land on the IdP.  Screenshots of each page go
// to "shots".

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'node', 'package.json'));
const { chromium } = require('playwright-core');

const opt = JSON.parse(process.argv[2]);
const out = { errors: [], console_errors: [] };
const T = 15000;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

async function shot(page, name) {
  await page.screenshot({ path: path.join(opt.shots, `${name}.png`), fullPage: true });
}

async function idpLogin(page, user) {
  await page.waitForSelector('input[name=login]', { timeout: T });
  out[`${user}_login_page`] = page.url();
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', `${user}-password`);
  await page.click('button[type=submit]');
}

let current = null;    // the page to photograph if something fails

const text = async (page, id) => (await page.textContent(`[data-testid=${id}]`, { timeout: T }))?.trim();

try {
  // ---------------------------------------------------------------- user
  const user = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const up = await user.newPage();
  await up.goto(`${opt.base}/app/hello?from=browser`);
  await idpLogin(up, 'alice');
  await up.waitForURL(`${opt.base}/app/hello?from=browser`, { timeout: T });
  out.user_landed = up.url();
  out.user_body = await up.textContent('body');
  out.user_agent = await up.evaluate(() => navigator.userAgent);
  await shot(up, '01-user-upstream');

  // alice again, on a phone: a second session, for the single-session trash can
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 '
      + '(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1',
  });
  const pp = await phone.newPage();
  await pp.goto(`${opt.base}/app/phone`);
  await idpLogin(pp, 'alice');
  await pp.waitForURL(`${opt.base}/app/phone`, { timeout: T });
  out.phone_landed = pp.url();

  // alice is no admin: the dashboard refuses her
  const refused = await up.goto(`${opt.base}/admin/`);
  out.alice_admin_status = refused.status();
  out.alice_admin_text = await up.textContent('body');
  await shot(up, '02-dashboard-refused');

  // --------------------------------------------------------------- admin
  const admin = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const ap = await admin.newPage();
  current = ap;
  // the probes below make the API answer 403 and 404 on purpose
  ap.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) {
      out.console_errors.push(m.text());
    }
  });
  ap.on('pageerror', (e) => out.console_errors.push(String(e)));

  await ap.goto(`${opt.base}/admin/`);
  await idpLogin(ap, 'admin');
  await ap.waitForURL(`${opt.base}/admin/**`, { timeout: T });
  await ap.waitForSelector('[data-testid=users-table] [data-testid=user-row]', { timeout: T });
  out.account = await text(ap, 'account');
  out.users_listed = await ap.$$eval('[data-testid=user-row]', (rows) => rows.map((r) => r.dataset.userId));
  await shot(ap, '03-identities');

  // search with the keyboard: focus the field, type, Enter
  await ap.focus('[data-testid=search-input]');
  await ap.keyboard.type('alice');
  await ap.keyboard.press('Enter');
  await ap.waitForFunction(() => document.querySelectorAll('[data-testid=user-row]').length === 1
    && document.querySelector('[data-testid=user-row]').textContent.includes('alice'), null, { timeout: T });
  const row = await ap.$('[data-testid=user-row]');
  out.search_rows = await ap.$$eval('[data-testid=user-row]', (rows) => rows.map((r) => ({
    id: r.dataset.userId, text: r.textContent.replace(/\s+/g, ' ').trim() })));
  await shot(ap, '04-search');

  // a search that finds nobody shows the empty state
  await ap.fill('[data-testid=search-input]', 'nobody-by-that-name');
  await ap.click('[data-testid=search-submit]');
  await ap.waitForSelector('[data-testid=empty]', { timeout: T });
  out.empty_text = await text(ap, 'empty');
  await ap.fill('[data-testid=search-input]', 'alice');
  await ap.click('[data-testid=search-submit]');
  await ap.waitForFunction(() => document.querySelectorAll('[data-testid=user-row]').length === 1, null, { timeout: T });

  // identity detail
  const uid = out.search_rows[0].id;
  await ap.click(`[data-testid=user-row][data-user-id="${uid}"] a, [data-testid=user-row][data-user-id="${uid}"]`);
  await ap.waitForSelector('[data-testid=user-detail]', { timeout: T });
  await ap.waitForSelector('[data-testid=endpoint-row]', { timeout: T });
  out.user_detail = (await text(ap, 'user-detail')).replace(/\s+/g, ' ');
  out.endpoints = await ap.$$eval('[data-testid=endpoint-row]', (rows) => rows.map((r) => ({
    id: r.dataset.endpointId, text: r.textContent.replace(/\s+/g, ' ').trim() })));
  await shot(ap, '05-identity');

  // the endpoint's sessions, then a session
  await ap.click(`[data-testid=endpoint-row][data-endpoint-id="${out.endpoints[0].id}"] a, [data-testid=endpoint-row][data-endpoint-id="${out.endpoints[0].id}"]`);
  // the identity page lists sessions too: wait for the endpoint's own page
  await ap.waitForSelector('[data-testid=endpoint-detail] [data-testid=session-row]', { timeout: T });
  out.endpoint_sessions = await ap.$$eval('[data-testid=session-row]', (rows) => rows.map((r) => ({
    id: r.dataset.sessionId, text: r.textContent.replace(/\s+/g, ' ').trim() })));
  await shot(ap, '06-endpoint-sessions');

  // the phone's session: its detail, then the trash can on it
  const phoneRow = out.endpoint_sessions.find((r) => /Mobile|iPhone|iOS/.test(r.text));
  out.phone_session = phoneRow ? phoneRow.id : null;
  if (phoneRow) {
    await ap.click(`[data-testid=session-row][data-session-id="${phoneRow.id}"]`);
    await ap.waitForSelector('[data-testid=session-detail]', { timeout: T });
    await ap.waitForFunction(() => (document.querySelector('[data-testid=field-device]')?.textContent || '').trim() !== '', null, { timeout: T });
    out.phone_device = await text(ap, 'field-device');
    out.phone_browser = await text(ap, 'field-browser');
    await ap.click('[data-testid=delete-session]');
    await ap.click('[data-testid=confirm-delete]');
    await ap.waitForSelector('[data-testid=notice]', { timeout: T });
    out.session_notice = await text(ap, 'notice');
    await pp.goto(`${opt.base}/app/phone?after=delete`);
    await pp.waitForSelector('input[name=login]', { timeout: T });
    out.phone_after_delete = pp.url();
    out.user_still_in = (await up.goto(`${opt.base}/app/hello?still=1`)).status();
    await ap.goto(`${opt.base}/admin/#/users/${uid}/endpoints/${out.endpoints[0].id}`);
    await ap.waitForSelector('[data-testid=session-row]', { timeout: T });
    await ap.waitForFunction((n) => document.querySelectorAll('[data-testid=session-row]').length === n,
      out.endpoint_sessions.length - 1, { timeout: T });
  }
  const laptopRow = (await ap.$$eval('[data-testid=session-row]', (rows) => rows.map((r) => r.dataset.sessionId)))[0];
  await ap.click(`[data-testid=session-row][data-session-id="${laptopRow}"]`);
  await ap.waitForSelector('[data-testid=session-detail]', { timeout: T });
  await ap.waitForFunction(() => (document.querySelector('[data-testid=field-ip]')?.textContent || '').trim() !== '', null, { timeout: T });
  out.session = {};
  for (const f of ['device', 'browser', 'os', 'ip', 'country', 'coordinates', 'agent']) {
    out.session[f] = await text(ap, `field-${f}`);
  }
  out.map_link = await ap.getAttribute('[data-testid=map-link]', 'href');
  out.session_url = ap.url();
  await shot(ap, '07-session');

  // the phone width
  await ap.setViewportSize({ width: 390, height: 844 });
  await shot(ap, '08-session-phone');
  await ap.goto(`${opt.base}/admin/#/`);
  await ap.waitForSelector('[data-testid=user-row]', { timeout: T });
  await shot(ap, '09-identities-phone');
  await ap.setViewportSize({ width: 1366, height: 800 });

  // a DELETE without the CSRF token is refused, the user still exists
  out.csrf_status = await ap.evaluate(async (id) => (await fetch(`app/users/${id}`,
    { method: 'DELETE', credentials: 'same-origin' })).status, uid);

  // the trash can: confirm, then the user is gone
  await ap.goto(`${opt.base}/admin/#/users/${uid}`);
  await ap.waitForSelector('[data-testid=delete-user]', { timeout: T });
  await ap.click('[data-testid=delete-user]');
  await ap.waitForSelector('[data-testid=confirm-delete]', { state: 'visible', timeout: T });
  await shot(ap, '10-confirm-delete');
  // Escape cancels, nothing is deleted
  await ap.keyboard.press('Escape');
  await ap.waitForSelector('[data-testid=confirm-delete]', { state: 'hidden', timeout: T });
  out.after_cancel_status = await ap.evaluate(async (id) => (await fetch(`app/users/${id}`,
    { credentials: 'same-origin' })).status, uid);
  await ap.click('[data-testid=delete-user]');
  await ap.click('[data-testid=confirm-delete]');
  await ap.waitForSelector('[data-testid=notice]', { timeout: T });
  out.notice = await text(ap, 'notice');
  await shot(ap, '11-deleted');
  out.after_delete_status = await ap.evaluate(async (id) => (await fetch(`app/users/${id}`,
    { credentials: 'same-origin' })).status, uid);

  // ---------------------------------------------------------------- user
  await up.goto(`${opt.base}/app/hello?after=delete`);
  await up.waitForSelector('input[name=login]', { timeout: T });
  out.user_after_delete = up.url();
  await shot(up, '12-user-back-at-idp');

  await phone.close();
  await user.close();
  await admin.close();
} catch (e) {
  out.errors.push(String(e && e.stack || e));
  if (current) {
    try {
      await shot(current, 'failure');
      out.failure_html = await current.content();
    } catch (e2) { /* the page may be gone */ }
  }
} finally {
  await browser.close();
}

process.stdout.write(JSON.stringify(out) + '\n');
