// The portal: a hash-routed single page. #/login, #/commune (tenant roles), #/request/<item>
// (the request form), #/dashboard and #/requests (operators and observers). Every section
// loads its own data and shows "unavailable" when its API is missing or fails: a page never
// throws.
import { h, clear, api, detail, setCsrf, onUnauthenticated } from './dom.js';
import { t, lang, setLang, pick, when, amount, num } from './i18n.js';
import { gauge, nodeBars, headroomBars, forecastChart } from './charts.js';

const RESOURCES = ['vcpus', 'ram_mib', 'disk_gib'];
const state = { me: null };

const $ = (id) => document.getElementById(id);

// ---- status messages (aria-live) -------------------------------------------------------

function say(text, kind) {
  const el = $('status');
  clear(el);
  el.className = `status ${kind || 'info'}`;
  // A fresh text node each time, so that screen readers announce a repeated message.
  window.setTimeout(() => el.appendChild(h('p', { text })), 30);
}

function unavailable(section) {
  section.appendChild(h('p', { class: 'muted', text: t('unavailable') }));
}

function section(title, id) {
  const hid = `${id}-title`;
  return h('section', { id, 'aria-labelledby': hid, class: 'card' }, h('h2', { id: hid, text: title }));
}

// A table in a focusable, named scroll region. hideCaption: the section's heading already
// says it (the caption stays for screen readers).
function tableWrap(caption, heads, rows, hideCaption) {
  const capId = `cap-${Math.random().toString(36).slice(2, 8)}`;
  return h(
    'div',
    { class: 'table-wrap', role: 'region', 'aria-label': t('table.region', { caption }), tabindex: '0' },
    h(
      'table',
      null,
      h('caption', { id: capId, class: hideCaption ? 'visually-hidden' : null, text: caption }),
      h('thead', null, h('tr', null, heads.map((x) => h('th', { scope: 'col', text: x })))),
      h('tbody', null, rows),
    ),
  );
}

function statusText(st) {
  return t(`status.${st}`) === `status.${st}` ? String(st) : t(`status.${st}`);
}

function vmStateText(st) {
  return t(`vmstate.${st}`) === `vmstate.${st}` ? String(st || '—') : t(`vmstate.${st}`);
}

function canChange() {
  return state.me && (state.me.role === 'operator' || state.me.role === 'tenant-admin');
}

// ---- chrome: header, navigation, language ----------------------------------------------

function renderChrome() {
  document.documentElement.lang = lang();
  document.title = `Mutualis — ${t(state.me ? (isOperatorSide() ? 'title.dashboard' : 'title.commune') : 'title.login')}`;
  $('skip-link').textContent = t('skip');
  const sw = $('lang-switch');
  sw.textContent = t('lang.switch');
  sw.setAttribute('lang', t('lang.switch.code'));
  $('logout').textContent = t('logout');
  $('logout').hidden = !state.me;
  $('foot-text').textContent = t('footer');
  const nav = clear($('nav'));
  nav.setAttribute('aria-label', t('nav'));
  const who = clear($('who'));
  if (!state.me) return;
  const role = t(`role.${state.me.role}`);
  who.textContent = state.me.tenant_name
    ? `${state.me.user} (${role}, ${state.me.tenant_name})`
    : `${state.me.user} (${role})`;
  const links = isOperatorSide()
    ? [['#/dashboard', 'nav.dashboard'], ['#/requests', 'nav.requests']]
    : [['#/commune', 'nav.commune']];
  const here = window.location.hash || '';
  nav.appendChild(
    h('ul', null, links.map(([href, key]) => h('li', null, h('a', { href, 'aria-current': here.startsWith(href) ? 'page' : null, text: t(key) })))),
  );
}

function isOperatorSide() {
  return state.me && (state.me.role === 'operator' || state.me.role === 'observer');
}

function page(titleKey, vars) {
  const main = clear($('main'));
  const title = t(titleKey, vars);
  document.title = `Mutualis — ${title}`;
  main.appendChild(h('h1', { text: title }));
  return main;
}

// ---- login -----------------------------------------------------------------------------

function renderLogin(message) {
  const main = page('title.login');
  const err = h('p', { id: 'login-error', class: 'error', role: 'alert' });
  if (message) err.textContent = message;
  const user = h('input', { id: 'login-username', name: 'username', type: 'text', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false', 'aria-describedby': 'login-error' });
  const pw = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'login-error' });
  const form = h(
    'form',
    { class: 'card login', novalidate: true },
    h('p', { text: t('login.intro') }),
    h('div', { class: 'field' }, h('label', { for: 'login-username', text: t('login.username') }), user),
    h('div', { class: 'field' }, h('label', { for: 'login-password', text: t('login.password') }), pw),
    err,
    h('button', { type: 'submit', class: 'primary', text: t('login.submit') }),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (!user.value || !pw.value) {
      err.textContent = t('login.required');
      (user.value ? pw : user).focus();
      return;
    }
    const res = await api('POST', '/v1/session', { username: user.value.trim(), password: pw.value });
    if (!res.ok) {
      err.textContent = res.status === 0 ? t('error.network') : t('login.failed', { detail: detail(res, String(res.status)) });
      pw.value = '';
      pw.focus();
      return;
    }
    pw.value = '';
    state.me = res.data;
    setCsrf(res.data.csrf_token);
    say(t('login.done'));
    go(isOperatorSide() ? '#/dashboard' : '#/commune');
  });
  main.appendChild(form);
  if (message) user.focus();
}

async function logout() {
  await api('DELETE', '/v1/session');
  state.me = null;
  setCsrf(null);
  say(t('logout.done'));
  go('#/login');
}

// ---- commune view ----------------------------------------------------------------------

async function renderCommune() {
  const main = page('title.commune');
  const cat = section(t('catalogue'), 'sec-catalogue');
  const reqs = section(t('requests.mine'), 'sec-requests');
  const vms = section(t('vms.mine'), 'sec-vms');
  const quota = section(t('quota.mine'), 'sec-quota');
  main.append(cat, reqs, vms, quota);
  const catalogue = api('GET', '/v1/catalog');
  await Promise.all([loadCatalogue(cat, catalogue), loadMyRequests(reqs, catalogue), loadVms(vms), loadQuota(quota, state.me.tenant_id)]);
}

async function loadCatalogue(sec, catalogue) {
  const res = await catalogue;
  if (!res.ok || !res.data || !Array.isArray(res.data.items)) return unavailable(sec);
  if (!res.data.items.length) return sec.appendChild(h('p', { text: t('catalogue.empty') }));
  const list = h('ul', { class: 'catalogue' });
  for (const it of res.data.items) {
    const name = pick(it.name) || String(it.id);
    list.appendChild(
      h(
        'li',
        { class: 'item' },
        h('h3', { text: name }),
        h('p', { text: pick(it.description) }),
        h(
          'ul',
          { class: 'facts' },
          Array.isArray(it.flavors) && it.flavors.length ? h('li', { text: t('catalogue.flavors', { list: it.flavors.join(', ') }) }) : null,
          it.approval ? h('li', { text: t(`catalogue.approval.${it.approval}`) }) : null,
          it.public ? h('li', { text: t('catalogue.public') }) : null,
        ),
        canChange() ? h('a', { class: 'button', href: `#/request/${encodeURIComponent(it.id)}`, text: t('catalogue.request', { name }) }) : null,
      ),
    );
  }
  sec.appendChild(list);
}

async function loadMyRequests(sec, catalogue) {
  const [res, cat] = await Promise.all([api('GET', '/v1/requests?limit=100'), catalogue]);
  if (!res.ok || !res.data || !Array.isArray(res.data.items)) return unavailable(sec);
  // Item names in the current language when the catalogue answered (else the item's id).
  const names = new Map();
  if (cat.ok && cat.data && Array.isArray(cat.data.items)) for (const it of cat.data.items) names.set(it.id, pick(it.name));
  if (!res.data.items.length) return sec.appendChild(h('p', { text: t('requests.empty') }));
  const rows = res.data.items.map((r) =>
    h(
      'tr',
      null,
      h('th', { scope: 'row', text: String(r.id) }),
      h('td', { text: names.get(r.item) || String(r.item) }),
      h('td', { text: String(r.flavor || '—') }),
      h('td', null, h('span', { class: `badge st-${r.status}`, text: statusText(r.status) })),
      h('td', { text: when(r.created_ms) }),
      h('td', { text: r.reason || '—' }),
      h(
        'td',
        null,
        r.status === 'pending' && canChange()
          ? h('button', {
              type: 'button',
              class: 'small',
              'aria-label': t('cancel', { id: r.id }),
              text: t('cancel.short'),
              onclick: async () => {
                const x = await api('POST', `/v1/requests/${r.id}/cancel`, {});
                if (x.ok) say(t('cancel.done', { id: r.id }));
                else say(t('error.generic', { detail: detail(x, String(x.status)) }), 'error');
                route();
              },
            })
          : null,
      ),
    ),
  );
  sec.appendChild(tableWrap(t('requests.mine'), [t('col.id'), t('col.item'), t('col.flavor'), t('col.status'), t('col.created'), t('col.reason'), t('col.actions')], rows, true));
}

async function loadVms(sec) {
  const res = await api('GET', '/v1/vms?limit=200');
  if (!res.ok || !res.data || !Array.isArray(res.data.items)) return unavailable(sec);
  if (!res.data.items.length) return sec.appendChild(h('p', { text: t('vms.empty') }));
  const rows = res.data.items.map((v) => {
    const observed = (v.observed && v.observed.state) || 'unknown';
    const desired = (v.desired && v.desired.state) || '';
    const act = (verb, key) =>
      h('button', {
        type: 'button',
        class: 'small',
        'aria-label': `${t(key)} ${v.name}`,
        text: t(key),
        onclick: async () => {
          const x = await api('POST', `/v1/vms/${v.id}/${verb}`, {});
          if (x.ok) say(t('vm.action.done', { action: t(key), name: v.name }));
          else say(t('error.generic', { detail: detail(x, String(x.status)) }), 'error');
          // Show the new state shortly, unless the person has gone elsewhere meanwhile.
          const here = window.location.hash;
          window.setTimeout(() => {
            if (window.location.hash === here) route();
          }, 600);
        },
      });
    return h(
      'tr',
      { 'data-vm': String(v.name) },
      h('th', { scope: 'row', text: String(v.name) }),
      h('td', null, h('span', { class: `badge vm-${observed}`, text: vmStateText(observed) })),
      h('td', { text: vmStateText(desired) }),
      h('td', { text: `${v.vcpus} vCPU, ${amount('ram_mib', v.ram_mib)}, ${amount('disk_gib', v.disk_gib)}` }),
      h('td', { class: 'actions' }, canChange() ? [act('start', 'vm.start'), act('stop', 'vm.stop'), act('reboot', 'vm.reboot')] : null),
    );
  });
  sec.appendChild(tableWrap(t('vms.mine'), [t('col.name'), t('col.state'), t('col.desired'), t('col.size'), t('col.actions')], rows, true));
}

function limitText(res, v) {
  return v === 'unlimited' || v === null || v === undefined ? t('quota.unlimited') : amount(res, v);
}

async function loadQuota(sec, tenantId) {
  if (!tenantId) return unavailable(sec);
  const res = await api('GET', `/v1/tenants/${tenantId}/quota`);
  if (!res.ok || !res.data || !Array.isArray(res.data.levels)) return unavailable(sec);
  renderQuota(sec, res.data.levels);
}

function renderQuota(sec, levels) {
  // Closest level first: the commune, then its EPCI, then the syndicat.
  for (const lv of [...levels].reverse()) {
    const rows = ['vcpus', 'ram_mib', 'disk_gib', 'vms', 'networks', 'public_ips'].filter((res) => res in (lv.allocated || {})).map((res) => {
      const used = (lv.allocated || {})[res];
      const lim = (lv.limits || {})[res];
      const p = typeof lim === 'number' && lim > 0 ? Math.min(100, (100 * used) / lim) : null;
      return h(
        'tr',
        null,
        h('th', { scope: 'row', text: t(`res.${res}`) }),
        h('td', { text: amount(res, used) }),
        h('td', { text: limitText(res, lim) }),
        h('td', { class: 'pct' }, p === null ? '—' : h('span', { class: 'meter' }, h('span', { class: `fill ${p >= 90 ? 'crit' : p >= 75 ? 'warn' : 'ok'}`, style: null, 'data-pct': String(Math.round(p)) }), ` ${num(p, 0)} %`)),
      );
    });
    sec.appendChild(tableWrap(t('quota.level', { tenant: lv.tenant }), [t('col.resource'), t('col.allocated'), t('col.limit'), '%'], rows));
  }
  // Widths come from data attributes, set here: the CSP forbids inline style attributes.
  for (const el of sec.querySelectorAll('.meter .fill')) el.style.width = `${el.dataset.pct}%`;
}

// ---- request form ----------------------------------------------------------------------

async function renderRequestForm(itemId, stale) {
  const res = await api('GET', '/v1/catalog');
  // Another route started meanwhile: it owns the page now.
  if (stale()) return undefined;
  const items = res.ok && res.data && Array.isArray(res.data.items) ? res.data.items : null;
  if (!items) {
    const main = page('title.commune');
    return unavailable(main);
  }
  const it = items.find((x) => String(x.id) === itemId);
  if (!it) {
    const main = page('title.commune');
    main.appendChild(h('p', { role: 'alert', class: 'error', text: t('form.unknown_item') }));
    return main.appendChild(h('p', null, h('a', { href: '#/commune', text: t('form.cancel') })));
  }
  const name = pick(it.name) || String(it.id);
  const main = page('title.request_form', { name });
  if (it.description) main.appendChild(h('p', { text: pick(it.description) }));
  const general = h('p', { id: 'form-error', class: 'error', role: 'alert' });
  const fields = {};
  const field = (key, label, control, help, required) => {
    const errId = `err-${key.replace(/[^a-z0-9]/gi, '-')}`;
    const helpId = help ? `help-${key.replace(/[^a-z0-9]/gi, '-')}` : null;
    control.setAttribute('aria-describedby', [helpId, errId].filter(Boolean).join(' '));
    const err = h('p', { id: errId, class: 'field-error' });
    fields[key] = { control, err };
    return h(
      'div',
      { class: 'field' },
      h('label', { for: control.id }, label, required ? h('span', { class: 'req', text: ` ${t('form.required')}` }) : null),
      help ? h('p', { id: helpId, class: 'help', text: help }) : null,
      control,
      err,
    );
  };
  const flavors = Array.isArray(it.flavors) ? it.flavors : [];
  const flavorSel = h('select', { id: 'f-flavor', name: 'flavor', required: true }, flavors.map((f) => h('option', { value: f, text: f })));
  const parts = [field('flavor', t('form.flavor'), flavorSel, null, true)];
  for (const p of Array.isArray(it.parameters) ? it.parameters : []) {
    const id = `f-p-${String(p.name).replace(/[^a-z0-9_-]/gi, '')}`;
    let c;
    if (p.type === 'enum' && Array.isArray(p.choices)) {
      c = h('select', { id, name: p.name }, p.required ? null : h('option', { value: '', text: '—' }), p.choices.map((x) => h('option', { value: String(x), text: String(x) })));
    } else if (p.type === 'integer') {
      c = h('input', { id, name: p.name, type: 'number', inputmode: 'numeric', step: '1', min: p.min, max: p.max });
    } else if (p.type === 'email') {
      c = h('input', { id, name: p.name, type: 'email', autocomplete: 'email', maxlength: p.max_length || 254 });
    } else if (p.type === 'domain') {
      c = h('input', { id, name: p.name, type: 'text', inputmode: 'url', autocapitalize: 'none', spellcheck: 'false', maxlength: p.max_length || 253 });
    } else {
      c = h('input', { id, name: p.name, type: 'text', maxlength: p.max_length || 200 });
    }
    if (p.required) c.setAttribute('aria-required', 'true');
    parts.push(field(`parameters.${p.name}`, pick(p.label) || p.name, c, pick(p.help), !!p.required));
    fields[`parameters.${p.name}`].param = p;
  }
  const just = h('textarea', { id: 'f-justification', name: 'justification', rows: 4, maxlength: 2000 });
  parts.push(field('justification', t('form.justification'), just, t('form.justification.help'), false));
  const form = h(
    'form',
    { class: 'card', novalidate: true },
    parts,
    general,
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', text: t('form.submit') }), h('a', { href: '#/commune', class: 'button secondary', text: t('form.cancel') })),
  );
  const showErrors = (errs) => {
    let first = null;
    for (const f of Object.values(fields)) {
      f.err.textContent = '';
      f.control.removeAttribute('aria-invalid');
    }
    for (const e of errs) {
      const f = fields[e.field];
      if (!f) continue;
      f.err.textContent = e.detail;
      f.control.setAttribute('aria-invalid', 'true');
      if (!first) first = f.control;
    }
    return first;
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    general.textContent = '';
    const params = {};
    const local = [];
    for (const [key, f] of Object.entries(fields)) {
      if (!f.param) continue;
      const v = f.control.value.trim();
      if (v === '') {
        if (f.param.required) local.push({ field: key, detail: t('form.field.required') });
        continue;
      }
      params[f.param.name] = f.param.type === 'integer' && /^-?\d+$/.test(v) ? Number(v) : v;
    }
    if (local.length) {
      general.textContent = t('form.invalid');
      const first = showErrors(local);
      if (first) first.focus();
      return;
    }
    showErrors([]);
    const body = { item: it.id, flavor: flavorSel.value, parameters: params };
    if (just.value.trim()) body.justification = just.value.trim();
    const x = await api('POST', '/v1/requests', body);
    if (x.ok && x.data) {
      say(t('form.sent', { id: x.data.id, status: statusText(x.data.status) }));
      go('#/commune');
      return;
    }
    const errs = x.data && Array.isArray(x.data.errors) ? x.data.errors : [];
    if (!errs.length && x.data && x.data.field) errs.push({ field: x.data.field, detail: x.data.detail });
    general.textContent = x.status === 0 ? t('error.network') : errs.length ? t('form.invalid') : t('error.generic', { detail: detail(x, String(x.status)) });
    const first = showErrors(errs);
    (first || general).focus();
  });
  general.setAttribute('tabindex', '-1');
  main.appendChild(form);
}

// ---- operator: dashboard ---------------------------------------------------------------

async function renderDashboard() {
  const main = page('title.dashboard');
  const bar = h('p', { class: 'toolbar' });
  const refresh = h('button', { type: 'button', class: 'secondary', text: t('dash.refresh'), onclick: () => route() });
  bar.appendChild(refresh);
  main.appendChild(bar);
  const cluster = section(t('dash.cluster'), 'sec-cluster');
  const n1 = section(t('dash.n1'), 'sec-n1');
  const alerts = section(t('dash.alerts'), 'sec-alerts');
  const pending = section(t('dash.pending'), 'sec-pending');
  const nodes = section(t('dash.nodes'), 'sec-nodes');
  const headroom = section(t('dash.headroom'), 'sec-headroom');
  const forecast = section(t('dash.forecast'), 'sec-forecast');
  main.append(cluster, n1, alerts, pending, nodes, headroom, forecast);

  const [cap, al, rq] = await Promise.all([
    api('GET', '/v1/capacity'),
    api('GET', '/v1/alerts?state=firing'),
    api('GET', '/v1/requests?status=pending&limit=1000'),
  ]);
  const doc = cap.ok && cap.data ? cap.data : null;
  if (doc && doc.generated_at) bar.appendChild(h('span', { class: 'muted', text: ` ${t('dash.updated', { when: when(doc.generated_at) })}` }));

  // Cluster gauges (schedulable nodes when there are any, else all).
  try {
    const cl = doc && doc.cluster ? doc.cluster.all || doc.cluster.schedulable : null;
    if (!cl) unavailable(cluster);
    else {
      cluster.appendChild(h('p', { text: t('dash.nodes.count', { n: cl.nodes, r: cl.nodes_reporting }) }));
      cluster.appendChild(h('div', { class: 'gauges' }, RESOURCES.filter((r) => cl[r]).map((r) => gauge(r, cl[r]))));
    }
  } catch (e) {
    unavailable(cluster);
  }

  // N+1 verdict.
  const v = doc ? doc.n_plus_1 : null;
  if (!v) unavailable(n1);
  else if (v.ok === true) n1.appendChild(h('p', { class: 'verdict ok', text: t('dash.n1.ok') }));
  else if (v.ok === false) n1.appendChild(h('p', { class: 'verdict ko', text: t('dash.n1.ko', { summary: v.summary || '' }) }));
  else n1.appendChild(h('p', { class: 'verdict', text: t('dash.n1.unknown') }));
  if (v && v.computed_at) n1.appendChild(h('p', { class: 'muted', text: t('dash.n1.at', { when: when(v.computed_at) }) }));

  // Alerts.
  if (!al.ok || !al.data || !Array.isArray(al.data.items)) unavailable(alerts);
  else if (!al.data.items.length) alerts.appendChild(h('p', { text: t('dash.alerts.none') }));
  else {
    const rows = al.data.items.map((a) =>
      h('tr', null, h('th', { scope: 'row', text: String(a.rule) }), h('td', null, h('span', { class: `badge sev-${a.severity}`, text: t(`sev.${a.severity}`) === `sev.${a.severity}` ? String(a.severity) : t(`sev.${a.severity}`) })), h('td', { text: String(a.subject || '') }), h('td', { text: String(a.detail || '') }), h('td', { text: when(a.since_ms) })),
    );
    alerts.appendChild(tableWrap(t('dash.alerts'), [t('col.name'), t('col.severity'), t('col.subject'), t('col.detail'), t('col.since')], rows, true));
  }

  // Pending requests.
  if (!rq.ok || !rq.data || !Array.isArray(rq.data.items)) unavailable(pending);
  else {
    pending.appendChild(h('p', { class: 'big', text: t('dash.pending.count', { n: rq.data.items.length }) }));
    pending.appendChild(h('p', null, h('a', { href: '#/requests', text: t('dash.pending.link') })));
  }

  // Nodes: states and per-node bars.
  const ns = doc && Array.isArray(doc.nodes) ? doc.nodes : null;
  if (!ns) unavailable(nodes);
  else if (!ns.length) nodes.appendChild(h('p', { text: t('dash.nodes.empty') }));
  else {
    const rows = ns.map((n) =>
      h(
        'tr',
        null,
        h('th', { scope: 'row', text: String(n.name) }),
        h('td', null, h('span', { class: `badge state-${n.state}`, text: t(`state.${n.state}`) === `state.${n.state}` ? String(n.state) : t(`state.${n.state}`) })),
        h('td', null, h('span', { class: `badge health-${n.health}`, text: t(`health.${n.health}`) === `health.${n.health}` ? String(n.health) : t(`health.${n.health}`) })),
        h('td', { text: n.schedulable ? t('yes') : t('no') }),
      ),
    );
    nodes.appendChild(tableWrap(t('dash.nodes'), [t('col.name'), t('col.state'), t('col.health'), t('col.schedulable')], rows, true));
    nodes.appendChild(h('div', { class: 'charts' }, RESOURCES.map((r) => nodeBars(ns, r))));
  }

  // Headroom per flavor.
  const hr = doc && Array.isArray(doc.headroom) ? doc.headroom : null;
  if (!hr) unavailable(headroom);
  else if (!hr.length) headroom.appendChild(h('p', { text: t('dash.headroom.empty') }));
  else headroom.appendChild(headroomBars(hr));

  // Forecast.
  const fc = doc ? doc.forecast : null;
  if (!fc) forecast.appendChild(h('p', { class: 'muted', text: t('dash.forecast.unavailable') }));
  else {
    if (fc.reason) {
      // The API's reason is English text; the portal says it in the reader's language.
      const few = Number.isInteger(fc.history_days) && Number.isInteger(fc.min_points) &&
        fc.history_days < fc.min_points;
      const why = few ? t('dash.forecast.history', { have: fc.history_days, need: fc.min_points }) : fc.reason;
      forecast.appendChild(h('p', { text: t('dash.forecast.none', { reason: why }) }));
    }
    const rs = fc.resources && typeof fc.resources === 'object' ? fc.resources : {};
    const charts = RESOURCES.filter((r) => rs[r]).map((r) => forecastChart(r, rs[r]));
    if (charts.length) forecast.appendChild(h('div', { class: 'charts' }, charts));
    else if (!fc.reason) forecast.appendChild(h('p', { class: 'muted', text: t('dash.forecast.unavailable') }));
  }
}

// ---- operator: pending requests ---------------------------------------------------------

async function renderRequests() {
  const main = page('title.requests');
  const sec = h('div', { class: 'requests' });
  main.appendChild(sec);
  const res = await api('GET', '/v1/requests?status=pending&limit=1000');
  if (!res.ok || !res.data || !Array.isArray(res.data.items)) return unavailable(sec);
  if (!res.data.items.length) return sec.appendChild(h('p', { text: t('requests.pending.empty') }));
  const quotas = new Map();
  for (const r of res.data.items) {
    const hid = `req-${r.id}`;
    const card = h('section', { class: 'card', 'aria-labelledby': hid }, h('h2', { id: hid, text: t('req.by', { id: r.id, tenant: r.tenant_name || r.tenant_id }) }));
    const params = r.parameters && typeof r.parameters === 'object' ? Object.entries(r.parameters).map(([k, v]) => `${k} = ${v}`).join(', ') : '';
    card.appendChild(
      h(
        'dl',
        { class: 'facts' },
        h('dt', { text: t('col.item') }), h('dd', { text: String(r.item) }),
        h('dt', { text: t('col.flavor') }), h('dd', { text: String(r.flavor || '—') }),
        h('dt', { text: t('col.parameters') }), h('dd', { text: params || '—' }),
        h('dt', { text: t('col.justification') }), h('dd', { text: r.justification || '—' }),
        h('dt', { text: t('col.created') }), h('dd', { text: when(r.created_ms) }),
      ),
    );
    const qsec = h('div', { class: 'quota' }, h('h3', { text: t('req.quota', { tenant: r.tenant_name || r.tenant_id }) }));
    card.appendChild(qsec);
    if (!quotas.has(r.tenant_id)) quotas.set(r.tenant_id, api('GET', `/v1/tenants/${r.tenant_id}/quota`));
    quotas.get(r.tenant_id).then((q) => {
      if (q.ok && q.data && Array.isArray(q.data.levels)) renderQuota(qsec, q.data.levels);
      else unavailable(qsec);
    });
    if (state.me.role === 'operator') {
      const reasonId = `reason-${r.id}`;
      const errId = `reason-err-${r.id}`;
      const reason = h('input', { id: reasonId, type: 'text', maxlength: 500, 'aria-describedby': errId });
      const err = h('p', { id: errId, class: 'field-error' });
      const decide = async (verb) => {
        err.textContent = '';
        reason.removeAttribute('aria-invalid');
        if (verb === 'reject' && !reason.value.trim()) {
          err.textContent = t('req.reason.required');
          reason.setAttribute('aria-invalid', 'true');
          reason.focus();
          return;
        }
        const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
        const x = await api('POST', `/v1/requests/${r.id}/${verb}`, body);
        if (x.ok) {
          say(t(verb === 'approve' ? 'req.approved' : 'req.rejected', { id: r.id }));
          route();
        } else {
          err.textContent = t('error.generic', { detail: detail(x, String(x.status)) });
        }
      };
      card.appendChild(
        h(
          'div',
          { class: 'decide' },
          h('div', { class: 'field' }, h('label', { for: reasonId, text: t('req.reason') }), reason, err),
          h(
            'div',
            { class: 'buttons' },
            h('button', { type: 'button', class: 'primary', text: t('req.approve'), 'aria-label': `${t('req.approve')} — ${r.id}`, onclick: () => decide('approve') }),
            h('button', { type: 'button', class: 'danger', text: t('req.reject'), 'aria-label': `${t('req.reject')} — ${r.id}`, onclick: () => decide('reject') }),
          ),
        ),
      );
    }
    sec.appendChild(card);
  }
}

// ---- routing ---------------------------------------------------------------------------

function go(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

let routing = 0;

async function route() {
  const my = ++routing;
  const hash = window.location.hash || '';
  if (!state.me) {
    const res = await api('GET', '/v1/session');
    if (my !== routing) return;
    if (res.ok && res.data && res.data.csrf_token) {
      state.me = res.data;
      setCsrf(res.data.csrf_token);
    }
  }
  renderChrome();
  try {
    if (!state.me) return renderLogin();
    if (hash.startsWith('#/request/') && !isOperatorSide()) return await renderRequestForm(decodeURIComponent(hash.slice(10)), () => my !== routing);
    if (isOperatorSide()) {
      if (hash === '#/requests') return await renderRequests();
      if (hash !== '#/dashboard') return go('#/dashboard');
      return await renderDashboard();
    }
    if (hash !== '#/commune') return go('#/commune');
    return await renderCommune();
  } catch (e) {
    // A bug in one page must not leave a blank screen.
    const main = clear($('main'));
    main.appendChild(h('h1', { text: 'Mutualis' }));
    unavailable(main);
  }
  return undefined;
}

function start() {
  setLang(lang());
  onUnauthenticated(() => {
    if (!state.me) return;
    state.me = null;
    setCsrf(null);
    say(t('session.expired'), 'error');
    go('#/login');
  });
  $('lang-switch').addEventListener('click', () => {
    setLang(lang() === 'fr' ? 'en' : 'fr');
    route();
  });
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', () => {
    route().then(() => {
      const main = $('main');
      if (main) main.focus({ preventScroll: false });
    });
  });
  route();
}

start();
