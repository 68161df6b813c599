// Browser half of the portal tests: drives Debian's chromium through playwright-core
// against a running mutualisd prepared by portal_e2e.py, which passes everything in the
// environment:
//   MU_E2E_URL       https://127.0.0.1:PORT
//   MU_E2E_SCENARIO  dashboard | commune
//   MU_E2E_USER, MU_E2E_PASSWORD   who logs in through the portal's form
//   MU_E2E_OUT       directory for screenshots (artefacts)
//   MU_E2E_EXPECT    JSON: what the page must and must not show (see each scenario)
// Prints "ok …" / "FAIL …" lines and exits 1 if any check failed. Every page must load with
// no console error (401 of the login probe and 404 of API routes the controller does not
// have yet excepted: the expectation lists the routes it has) and no axe-core violation of
// impact serious or critical.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const env = process.env;
const URL0 = env.MU_E2E_URL;
const OUT = env.MU_E2E_OUT;
const EXPECT = JSON.parse(env.MU_E2E_EXPECT || '{}');
const CHROMIUM = env.MU_E2E_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 20000;

// Chromium aborts a page load with ERR_NETWORK_CHANGED when a link or address changes in its
// network namespace (other tests create veths and namespaces). That is not what the tests
// check: such a load is retried, a few times, with a short pause.
async function gotoRetry(page, url, opts) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.goto(url, opts);
    } catch (e) {
      if (attempt >= 4 || !String(e && e.message).includes('ERR_NETWORK_CHANGED')) throw e;
      console.error(`navigation to ${url} aborted by a network change, retry ${attempt}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

let failed = 0;
let passed = 0;
function check(cond, what) {
  if (cond) {
    passed += 1;
    console.log(`ok   ${what}`);
  } else {
    failed += 1;
    console.log(`FAIL ${what}`);
  }
  return cond;
}

// Console errors and uncaught exceptions of a page, minus the expected network refusals.
// Refusals a step provokes on purpose ({status, path}), each excused once.
const provoked = [];

function watch(page) {
  const errors = [];
  const known = new Set(EXPECT.routes || []);
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    const url = (msg.location() && msg.location().url) || '';
    // The browser's own error page of a load aborted by a network change (retried).
    if (url.startsWith('chrome-error://')) return;
    const p = url.startsWith(URL0) ? new URL(url).pathname : url;
    const i = provoked.findIndex((x) => p === x.path && text.includes(`status of ${x.status}`));
    if (i >= 0) {
      provoked.splice(i, 1);
      return;
    }
    // The portal asks "who am I" before the login: 401 is the expected answer.
    if (/status of 401/.test(text) && p === '/v1/session') return;
    // An API the controller does not have yet: the page shows "unavailable".
    if (/status of 404/.test(text) && p.startsWith('/v1/') && ![...known].some((r) => matches(r, p))) return;
    errors.push(`${text} (${url})`);
  });
  return errors;
}

function matches(route, p) {
  const re = new RegExp(`^${route.replace(/\{[^}]+\}/g, '[^/]+')}$`);
  return re.test(p);
}

async function axe(page, what) {
  await page.evaluate(`${axeSource}\n;0`);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of bad) console.log(`     axe ${v.impact} ${v.id}: ${v.help} — ${v.nodes.join(' | ')}`);
  for (const v of result.filter((x) => !bad.includes(x))) console.log(`     axe (${v.impact}) ${v.id}: ${v.help}`);
  check(bad.length === 0, `${what}: no serious or critical axe-core violation (${bad.length})`);
}

async function shot(page, name) {
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`     screenshot ${file}`);
}

async function login(page) {
  await gotoRetry(page, `${URL0}/`, { waitUntil: 'load' });
  await page.waitForSelector('#login-username', { timeout: TIMEOUT });
  check((await page.getAttribute('html', 'lang')) === 'fr', 'the portal opens in French (<html lang="fr">)');
  // Keyboard: the first Tab reaches the skip link.
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement && document.activeElement.id === 'skip-link'), 'the first Tab stop is the skip link');
  // A wrong password: a text error, still on the form.
  await page.fill('#login-username', env.MU_E2E_USER);
  await page.fill('#login-password', 'not the password at all');
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.getElementById('login-error') && document.getElementById('login-error').textContent.length > 0, null, { timeout: TIMEOUT });
  check(/Connexion refusée/.test(await page.textContent('#login-error')), 'a wrong password shows a text error');
  await page.fill('#login-username', env.MU_E2E_USER);
  await page.fill('#login-password', env.MU_E2E_PASSWORD);
  await page.click('button[type=submit]');
}

let current = null; // the page of the running scenario (for a crash report)

async function dashboard(ctx) {
  const page = await ctx.newPage();
  current = page;
  const errors = watch(page);
  await login(page);
  await page.waitForSelector('#sec-cluster .gauge svg', { state: 'attached', timeout: TIMEOUT });
  await page.waitForSelector('#sec-nodes svg.bars', { state: 'attached', timeout: TIMEOUT });
  check(page.url().endsWith('#/dashboard'), 'an operator lands on the dashboard');
  const cookies = await ctx.cookies();
  const c = cookies.find((x) => x.name === 'mu_session');
  check(c && c.httpOnly && c.secure && c.sameSite === 'Strict', 'session cookie is HttpOnly, Secure, SameSite=Strict');
  check(!(await page.evaluate(() => document.cookie.includes('mu_session'))), 'the page script cannot read the session cookie');
  check((await page.locator('#sec-cluster figure.gauge').count()) === 3, 'three cluster gauges (vCPU, memory, disk)');
  const names = EXPECT.nodes || [];
  const nodesText = await page.textContent('#sec-nodes');
  check(names.length > 0 && names.every((n) => nodesText.includes(n)), `every node is listed (${names.join(', ')})`);
  check((await page.locator('#sec-nodes svg.bars').count()) === 3, 'per-node bars for the three resources');
  check((await page.locator('#sec-nodes svg.bars rect.alloc').count()) === 3 * names.length, 'one allocation bar per node and resource');
  const hr = await page.textContent('#sec-headroom');
  check((EXPECT.flavors || []).every((f) => hr.includes(f)), 'headroom lists every flavor');
  const n1 = await page.textContent('#sec-n1');
  check(/Oui|Non|Pas encore/.test(n1), `N+1 verdict shown (${n1.trim().slice(0, 80)})`);
  check((await page.textContent('#sec-alerts')).length > 0, 'alerts section rendered');
  check((await page.textContent('#sec-pending')).length > 0, 'pending requests section rendered');
  const fcText = await page.textContent('#sec-forecast');
  check(fcText.length > 0, 'forecast section rendered');
  check(/il faut 7 jours d’historique/.test(fcText) && !/needs \d+ days/.test(fcText),
    `why there is no forecast, in French (${fcText.trim().slice(0, 80)})`);
  // Every chart has a text equivalent: an accessible name and the figures as text.
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('svg[role=img]')].filter((s) => {
    const id = s.getAttribute('aria-labelledby');
    return !id || !document.getElementById(id) || !document.getElementById(id).textContent.trim();
  }).length);
  check(unnamed === 0, 'every chart is named by a visible caption');
  await shot(page, 'dashboard-1280x800');
  await axe(page, 'dashboard at 1280x800');

  // Phone width: same page, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('#sec-cluster .gauge svg', { state: 'attached', timeout: TIMEOUT });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no horizontal scrolling at 390 px (${overflow} px too wide)`);
  await shot(page, 'dashboard-390x844');
  await axe(page, 'dashboard at 390x844');

  // English, kept across a reload; <html lang> follows.
  await page.click('#lang-switch');
  await page.waitForFunction(() => document.documentElement.lang === 'en', null, { timeout: TIMEOUT });
  await page.waitForSelector('#sec-cluster .gauge svg', { state: 'attached', timeout: TIMEOUT });
  check((await page.textContent('h1')) === 'Dashboard', 'English switch: the page speaks English');
  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('#sec-cluster .gauge svg', { state: 'attached', timeout: TIMEOUT });
  check((await page.getAttribute('html', 'lang')) === 'en', 'the language choice survives a reload');
  await axe(page, 'dashboard in English');
  await page.click('#lang-switch');
  await page.waitForFunction(() => document.documentElement.lang === 'fr', null, { timeout: TIMEOUT });

  // Pending requests: each with its tenant's quota; a refusal needs a reason.
  const pending = EXPECT.pending || [];
  if (pending.length) {
    await gotoRetry(page, `${URL0}/#/requests`);
    await page.waitForSelector(`#req-${pending[0]}`, { timeout: TIMEOUT });
    await page.waitForFunction(() => [...document.querySelectorAll('.quota')].every((q) => q.children.length > 1), null, { timeout: TIMEOUT });
    for (const id of pending) check((await page.locator(`#req-${id}`).count()) === 1, `pending request ${id} shown`);
    check((await page.locator('.quota table').count()) >= pending.length, "each request shows its tenant's quota");
    await shot(page, 'requests-1280x800');
    await axe(page, 'pending requests');
    const card = page.locator(`section[aria-labelledby="req-${pending[0]}"]`);
    await card.locator('button.danger').click();
    check(/motif|reason/i.test(await card.locator('.field-error').textContent()), 'a rejection without a reason is refused in the page');
    await card.locator('input').fill('Budget non voté');
    await card.locator('button.danger').click();
    await page.waitForFunction((id) => new RegExp(`n° ${id} refusée`).test(document.getElementById('status').textContent), pending[0], { timeout: TIMEOUT });
    await page.waitForFunction((id) => !document.getElementById(`req-${id}`), pending[0], { timeout: TIMEOUT });
    const got = await page.evaluate(async (id) => (await fetch(`/v1/requests/${id}`)).json(), pending[0]);
    check(got.status === 'rejected' && got.reason === 'Budget non voté', `request ${pending[0]} rejected from the page with its reason (${got.status}, ${got.reason})`);
  }

  // Logout: back to the login form, and the old cookie no longer works.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.click('#logout');
  await page.waitForSelector('#login-username', { timeout: TIMEOUT });
  const r = await page.evaluate(async () => (await fetch('/v1/session')).status);
  check(r === 401, 'after logout the session is gone (401)');
  check(errors.length === 0, `no console error (${errors.join(' | ')})`);
  await page.close();
}

async function commune(ctx) {
  const page = await ctx.newPage();
  current = page;
  const errors = watch(page);
  await login(page);
  await page.waitForSelector('#sec-vms', { timeout: TIMEOUT });
  // Every section finished loading (content or "unavailable").
  await page.waitForFunction(() => ['sec-catalogue', 'sec-requests', 'sec-vms', 'sec-quota'].every((id) => {
    const s = document.getElementById(id);
    return s && s.children.length > 1;
  }), null, { timeout: TIMEOUT });
  check(page.url().endsWith('#/commune'), 'a tenant-admin lands on the commune view');
  const vms = await page.textContent('#sec-vms');
  check((EXPECT.own_vms || []).every((v) => vms.includes(v)), `own VMs listed (${(EXPECT.own_vms || []).join(', ')})`);
  const body = await page.textContent('main');
  check((EXPECT.foreign || []).every((v) => !body.includes(v)), `nothing of another tenant shown (${(EXPECT.foreign || []).join(', ')})`);
  const quota = await page.textContent('#sec-quota');
  check((EXPECT.quota_levels || []).every((n) => quota.includes(n)), `quota shown at each level (${(EXPECT.quota_levels || []).join(', ')})`);
  check(quota.includes('Réseaux privés') && quota.includes('Adresses publiques'), 'quota shows private networks and public addresses too');
  const cat = await page.textContent('#sec-catalogue');
  if (EXPECT.catalogue && EXPECT.catalogue.length) {
    check(EXPECT.catalogue.every((n) => cat.includes(n)), `catalogue items shown (${EXPECT.catalogue.join(', ')})`);
  } else {
    check(/Indisponible|Aucun service/.test(cat), 'no catalogue API yet: the section says so');
  }
  const reqs = await page.textContent('#sec-requests');
  if (EXPECT.requests_api) {
    check(!/Indisponible/.test(reqs), 'my requests rendered');
    const ids = await page.$$eval('#sec-requests tbody th', (ths) => ths.map((th) => th.textContent));
    check((EXPECT.own_requests || []).every((id) => ids.includes(String(id))), `own requests listed (${ids.join(', ')})`);
    check((EXPECT.foreign_requests || []).every((id) => !ids.includes(String(id))), 'no request of another tenant listed');
  } else {
    check(/Indisponible/.test(reqs), 'no requests API yet: the section says so');
  }
  await shot(page, 'commune-1280x800');
  await axe(page, 'commune view at 1280x800');

  // A VM action from the page: goes through with the session's CSRF token.
  const own = (EXPECT.own_vms || [])[0];
  if (own) {
    const [resp] = await Promise.all([
      page.waitForResponse((r) => /\/v1\/vms\/\d+\/reboot$/.test(r.url()), { timeout: TIMEOUT }),
      page.click(`tr[data-vm="${own}"] button:has-text("Redémarrer")`),
    ]);
    const sent = resp.request().headers()['x-csrf-token'];
    check(resp.status() === 202 && sent && sent.length === 64, `reboot of ${own} accepted from the page with the CSRF token (${resp.status()} ${resp.status() === 202 ? '' : await resp.text()})`);
    await page.waitForFunction(() => /demandé|Erreur/.test(document.getElementById('status').textContent), null, { timeout: TIMEOUT });
    check(/demandé/.test(await page.textContent('#status')), 'the page says the reboot was requested');
  }

  // The request form, when there is a catalogue: client-side and server-side field errors,
  // then a request that goes through.
  const form = EXPECT.form;
  if (form) {
    await gotoRetry(page, `${URL0}/#/request/${form.item}`);
    await page.waitForSelector('form button[type=submit]', { timeout: TIMEOUT });
    const labelled = await page.evaluate(() => [...document.querySelectorAll('form input, form select, form textarea')].every((el) => el.labels && el.labels.length > 0));
    check(labelled, 'every field of the request form has a label');
    const dom = `#f-p-${form.domain}`;
    await page.click('form button[type=submit]');
    await page.waitForFunction((sel) => document.querySelector(sel).getAttribute('aria-invalid') === 'true', dom, { timeout: TIMEOUT });
    check(await page.evaluate((sel) => document.activeElement === document.querySelector(sel), dom), 'an empty required field is marked and focused');
    for (const [name, value] of Object.entries(form.values)) {
      const sel = `#f-p-${name}`;
      if ((await page.locator(sel).evaluate((el) => el.tagName)) === 'SELECT') await page.selectOption(sel, String(value));
      else await page.fill(sel, String(value));
    }
    await page.fill(dom, 'pas un domaine !');
    provoked.push({ status: 400, path: '/v1/requests' });
    await page.click('form button[type=submit]');
    await page.waitForFunction((sel) => {
      const el = document.querySelector(sel);
      const err = document.getElementById(el.getAttribute('aria-describedby').split(' ').pop());
      return el.getAttribute('aria-invalid') === 'true' && err && err.textContent.length > 0;
    }, dom, { timeout: TIMEOUT });
    const serverErr = await page.evaluate((sel) => {
      const el = document.querySelector(sel);
      return document.getElementById(el.getAttribute('aria-describedby').split(' ').pop()).textContent;
    }, dom);
    check(serverErr.length > 0 && !/obligatoire/.test(serverErr), `the server's field error is shown under the field (${serverErr})`);
    await shot(page, 'commune-request-form-errors');
    await axe(page, 'request form with errors');
    await page.fill(dom, form.values[form.domain]);
    await page.fill('#f-justification', 'Site de la mairie');
    await page.click('form button[type=submit]');
    await page.waitForFunction(() => /envoyée/.test(document.getElementById('status').textContent), null, { timeout: TIMEOUT });
    await page.waitForSelector('#sec-requests table', { timeout: TIMEOUT });
    const n = await page.locator('#sec-requests tbody tr').count();
    check(n === (EXPECT.own_requests || []).length + 1, `the new request is listed (${n} requests)`);
  }

  await page.setViewportSize({ width: 360, height: 740 });
  await gotoRetry(page, `${URL0}/#/commune`);
  await page.waitForSelector('#sec-vms table, #sec-vms p', { timeout: TIMEOUT });
  await page.waitForFunction(() => document.getElementById('sec-quota') && document.getElementById('sec-quota').children.length > 1, null, { timeout: TIMEOUT });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no horizontal scrolling at 360 px (${overflow} px too wide)`);
  await shot(page, 'commune-360x740');
  await axe(page, 'commune view at 360 px');
  check(errors.length === 0, `no console error (${errors.join(' | ')})`);
  await page.close();
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  // A new, empty profile for each run.
  const dataDir = fs.mkdtempSync(path.join(OUT, 'profile-'));
  const ctx = await chromium.launchPersistentContext(dataDir, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: true, // the controller's certificate comes from its own fresh test CA
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    if (env.MU_E2E_SCENARIO === 'dashboard') await dashboard(ctx);
    else if (env.MU_E2E_SCENARIO === 'commune') await commune(ctx);
    else check(false, `unknown scenario ${env.MU_E2E_SCENARIO}`);
  } catch (e) {
    check(false, `scenario ${env.MU_E2E_SCENARIO} crashed: ${e && e.stack ? e.stack.split('\n').slice(0, 4).join(' / ') : e}`);
    if (current) {
      try {
        await shot(current, 'crash');
        console.log(`     url ${current.url()}`);
        console.log(`     page text: ${(await current.textContent('body')).replace(/\s+/g, ' ').slice(0, 1500)}`);
      } catch (e2) {
        console.log(`     no crash report: ${e2}`);
      }
    }
  } finally {
    await ctx.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
