// Browser half of issue 6's end-to-end flow (flow_e2e.py prepares the controller, the node
// and the users, then runs this): one headless Chromium, one browser context per person.
//   commune   logs in, requests the item through the form (valid values), sees it pending;
//   operator  logs in, approves it in the pending requests page;
//   commune   reloads its page until the request shows `ready` (or `failed`: stop) and its
//             VM shows running, judged from what the page says, within ready_deadline_s;
//   other     another commune logs in: nothing of it in its portal; the request and the VM
//             answer 404 to its session.
// Environment: MU_E2E_URL, MU_E2E_PASSWORD, MU_E2E_OUT (screenshots), MU_E2E_CHROMIUM,
// MU_E2E_RESULT (JSON written here: request_id, vm_id, vm_name), MU_E2E_EXPECT (JSON, see
// flow_e2e.py). Prints "ok …" / "FAIL …" lines; exits 1 if any check failed. Any console
// error or uncaught exception in any page fails (except the portal's 401 "who am I" probe
// before a login, and the two 404s the other commune provokes on purpose).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const env = process.env;
const URL0 = env.MU_E2E_URL;
const OUT = env.MU_E2E_OUT;
const EXPECT = JSON.parse(env.MU_E2E_EXPECT || '{}');
const TIMEOUT = 30000;

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

class Stop extends Error {}
// A check the rest of the flow depends on.
function need(cond, what) {
  if (!check(cond, what)) throw new Stop(what);
}

const errors = [];
const provoked = []; // {status, path}: refusals a step asks for, each excused once

function watch(page, who) {
  page.on('pageerror', (e) => errors.push(`${who}: pageerror: ${e.message}`));
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
    errors.push(`${who}: ${text} (${url})`);
  });
}

let shots = 0;
async function shot(page, name) {
  shots += 1;
  const file = path.join(OUT, `${String(shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`     screenshot ${file}`);
}

const pages = [];
async function person(browser, who) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 }, locale: 'fr-FR' });
  const page = await ctx.newPage();
  watch(page, who);
  pages.push({ who, page });
  return page;
}

async function login(page, user, landing) {
  await gotoRetry(page, `${URL0}/`, { waitUntil: 'load' });
  await page.waitForSelector('#login-username', { timeout: TIMEOUT });
  await page.fill('#login-username', user);
  await page.fill('#login-password', env.MU_E2E_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForFunction((h) => window.location.hash === h, landing, { timeout: TIMEOUT });
}

// The commune view, every section loaded (content or "unavailable").
async function communeLoaded(page) {
  await page.waitForFunction(() => ['sec-catalogue', 'sec-requests', 'sec-vms', 'sec-quota'].every((id) => {
    const s = document.getElementById(id);
    return s && s.children.length > 1;
  }), null, { timeout: TIMEOUT });
}

// The row of request id in "my requests": {status class, text} or null.
async function requestRow(page, id) {
  return page.evaluate((rid) => {
    for (const tr of document.querySelectorAll('#sec-requests tbody tr')) {
      const th = tr.querySelector('th');
      if (!th || th.textContent.trim() !== String(rid)) continue;
      const badge = tr.querySelector('.badge');
      const st = badge ? [...badge.classList].find((c) => c.startsWith('st-')) : null;
      return { status: st ? st.slice(3) : null, text: tr.textContent };
    }
    return null;
  }, id);
}

async function vmRow(page, name) {
  return page.evaluate((n) => {
    const tr = [...document.querySelectorAll('#sec-vms tr[data-vm]')].find((x) => x.dataset.vm === n);
    if (!tr) return null;
    const badge = tr.querySelector('.badge');
    const st = badge ? [...badge.classList].find((c) => c.startsWith('vm-')) : null;
    return { state: st ? st.slice(3) : null, text: tr.textContent };
  }, name);
}

const result = {};
function save() {
  if (env.MU_E2E_RESULT) fs.writeFileSync(env.MU_E2E_RESULT, JSON.stringify(result));
}

async function flow(browser) {
  const U = EXPECT.users;

  // --- 1. the commune requests the website ------------------------------------------
  const commune = await person(browser, 'commune');
  await login(commune, U.commune, '#/commune');
  await communeLoaded(commune);
  check((await commune.textContent('#sec-catalogue')).includes(EXPECT.item_name), `the commune sees "${EXPECT.item_name}" in the catalogue`);
  await shot(commune, 'commune-logged-in');
  await gotoRetry(commune, `${URL0}/#/request/${EXPECT.item}`);
  await commune.waitForSelector('form button[type=submit]', { timeout: TIMEOUT });
  await commune.selectOption('#f-flavor', EXPECT.flavor);
  for (const [name, value] of Object.entries(EXPECT.values)) {
    const sel = `#f-p-${name}`;
    if ((await commune.locator(sel).evaluate((el) => el.tagName)) === 'SELECT') await commune.selectOption(sel, String(value));
    else await commune.fill(sel, String(value));
  }
  await commune.fill('#f-justification', EXPECT.justification);
  await shot(commune, 'commune-request-form');
  const [resp] = await Promise.all([
    commune.waitForResponse((r) => new URL(r.url()).pathname === '/v1/requests' && r.request().method() === 'POST', { timeout: TIMEOUT }),
    commune.click('form button[type=submit]'),
  ]);
  const filed = await resp.json().catch(() => ({}));
  need(resp.status() === 201 && filed.status === 'pending', `the request is filed from the form: 201 pending (${resp.status()} ${filed.status || JSON.stringify(filed).slice(0, 200)})`);
  const rid = filed.id;
  result.request_id = rid;
  save();
  await commune.waitForFunction(() => /envoyée/.test(document.getElementById('status').textContent), null, { timeout: TIMEOUT });
  await communeLoaded(commune);
  const row0 = await requestRow(commune, rid);
  check(row0 && row0.status === 'pending', `the commune's page lists request ${rid} as pending (${row0 && row0.status})`);
  await shot(commune, 'commune-request-pending');

  // --- 2. an operator approves it in the portal ---------------------------------------
  const operator = await person(browser, 'operator');
  await login(operator, U.operator, '#/dashboard');
  await gotoRetry(operator, `${URL0}/#/requests`);
  await operator.waitForSelector(`#req-${rid}`, { timeout: TIMEOUT });
  const card = operator.locator(`section[aria-labelledby="req-${rid}"]`);
  const cardText = await card.textContent();
  check(cardText.includes(EXPECT.values.domain) && cardText.includes(EXPECT.justification), 'the operator sees the parameters and the justification');
  await card.locator('input').fill('Validé par le service informatique');
  await shot(operator, 'operator-pending-request');
  const [ap] = await Promise.all([
    operator.waitForResponse((r) => new URL(r.url()).pathname === `/v1/requests/${rid}/approve`, { timeout: TIMEOUT }),
    card.locator('button.primary').click(),
  ]);
  const approved = await ap.json().catch(() => ({}));
  need(ap.status() === 200 && approved.status === 'provisioning' && approved.vm_id, `approved from the page: provisioning, VM admitted (${ap.status()} ${approved.status} ${approved.reason || ''})`);
  result.vm_id = approved.vm_id;
  save();
  await operator.waitForFunction((id) => new RegExp(`n° ${id} approuvée`).test(document.getElementById('status').textContent), rid, { timeout: TIMEOUT });
  await operator.waitForFunction((id) => !document.getElementById(`req-${id}`), rid, { timeout: TIMEOUT });
  check(true, `the page says request ${rid} was approved and it left the pending list`);
  await shot(operator, 'operator-approved');

  // --- 3. the commune sees it ready, its VM running -----------------------------------
  const vm = await commune.evaluate(async (id) => (await fetch(`/v1/vms/${id}`)).json(), approved.vm_id);
  result.vm_name = vm.name;
  result.vm_uuid = vm.uuid;
  save();
  const t0 = Date.now();
  const deadline = t0 + EXPECT.ready_deadline_s * 1000;
  let row = null;
  let vrow = null;
  const seen = new Set();
  let shotProvisioning = false;
  for (;;) {
    await gotoRetry(commune, `${URL0}/#/commune`);
    await commune.reload({ waitUntil: 'load' });
    await communeLoaded(commune);
    row = await requestRow(commune, rid);
    vrow = await vmRow(commune, vm.name);
    if (row && row.status) seen.add(row.status);
    if (row && row.status === 'provisioning' && !shotProvisioning) {
      shotProvisioning = true;
      await shot(commune, 'commune-provisioning');
    }
    if (row && row.status === 'failed') break;
    if (row && row.status === 'ready' && vrow && vrow.state === 'running') break;
    if (Date.now() > deadline) break;
    await commune.waitForTimeout(3000);
  }
  console.log(`     statuses seen by the commune: ${[...seen].join(' → ')} (after ${Math.round((Date.now() - t0) / 1000)} s)`);
  need(row && row.status === 'ready', `the commune's page shows request ${rid} ready (${row ? `${row.status}: ${row.text}` : 'not listed'})`);
  need(vrow && vrow.state === 'running', `the commune's page shows its VM ${vm.name} running (${vrow ? vrow.state : 'not listed'})`);
  check(/prête/.test(row.text), 'the status reads "prête" in French');
  await shot(commune, 'commune-ready');

  // --- 4. another commune sees none of it ---------------------------------------------
  const other = await person(browser, 'other commune');
  await login(other, U.other, '#/commune');
  await communeLoaded(other);
  const body = await other.textContent('main');
  check(!(await requestRow(other, rid)), `the other commune's page does not list request ${rid}`);
  check(!(await vmRow(other, vm.name)), `the other commune's page does not list VM ${vm.name}`);
  check(!body.includes(vm.name) && !body.includes(EXPECT.values.domain) && !body.includes(EXPECT.tenant), `nothing of ${EXPECT.tenant} appears in its page`);
  provoked.push({ status: 404, path: `/v1/requests/${rid}` }, { status: 404, path: `/v1/vms/${approved.vm_id}` });
  const st = await other.evaluate(async ([r, v]) => [(await fetch(`/v1/requests/${r}`)).status, (await fetch(`/v1/vms/${v}`)).status], [rid, approved.vm_id]);
  check(st[0] === 404 && st[1] === 404, `its session gets 404 for the request and the VM (${st.join(', ')})`);
  await shot(other, 'other-commune');
  // Let late console messages arrive before judging.
  await other.waitForTimeout(500);
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const browser = await chromium.launch({
    executablePath: env.MU_E2E_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    await flow(browser);
  } catch (e) {
    if (!(e instanceof Stop)) check(false, `the flow crashed: ${e && e.stack ? e.stack.split('\n').slice(0, 4).join(' / ') : e}`);
    for (const { who, page } of pages) {
      try {
        await shot(page, `failure-${who.replace(/\s+/g, '-')}`);
        console.log(`     ${who} url ${page.url()}`);
        console.log(`     ${who} page text: ${(await page.textContent('body')).replace(/\s+/g, ' ').slice(0, 1200)}`);
      } catch (e2) {
        console.log(`     no failure report for ${who}: ${e2}`);
      }
    }
  } finally {
    check(errors.length === 0, `no console error in any page (${errors.join(' | ')})`);
    save();
    await browser.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
