// SVG charts of the dashboard. Each chart is a <figure>: the SVG has role="img" and is
// named by the figure's caption, and the same figures are given as text (a sentence or
// a table), so nothing is only visual.
import { h, s, uid } from './dom.js';
import { t, amount, num } from './i18n.js';

function pct(a, b) {
  const x = Number(a);
  const y = Number(b);
  if (!Number.isFinite(x) || !Number.isFinite(y) || y <= 0) return 0;
  return Math.max(0, Math.min(100, (100 * x) / y));
}

function table(caption, heads, rows) {
  const capId = uid('cap');
  return h(
    'div',
    { class: 'table-wrap', role: 'region', 'aria-label': t('table.region', { caption }), tabindex: '0' },
    h(
      'table',
      null,
      h('caption', { id: capId, text: caption }),
      h('thead', null, h('tr', null, heads.map((x) => h('th', { scope: 'col', text: x })))),
      h(
        'tbody',
        null,
        rows.map((r) => h('tr', null, r.map((c, i) => (i === 0 ? h('th', { scope: 'row', text: c }) : h('td', { text: c }))))),
      ),
    ),
  );
}

// A ring gauge of one cluster resource: allocated over allocatable, used as a thin inner ring.
export function gauge(res, r) {
  const capId = uid('gauge');
  const alloc = pct(r.allocated, r.allocatable);
  const hasUsed = r.used !== null && r.used !== undefined;
  const used = hasUsed ? pct(r.used, r.allocatable) : 0;
  const C = 2 * Math.PI * 40;
  const Ci = 2 * Math.PI * 30;
  const text = t(hasUsed ? 'dash.gauge' : 'dash.gauge.noused', {
    res: t(`res.${res}`),
    allocated: amount(res, r.allocated),
    allocatable: amount(res, r.allocatable),
    pct: num(alloc, 0),
    used: amount(res, r.used),
  });
  const level = alloc >= 90 ? 'crit' : alloc >= 75 ? 'warn' : 'ok';
  return h(
    'figure',
    { class: 'gauge' },
    s(
      'svg',
      { viewBox: '0 0 100 100', width: '140', height: '140', role: 'img', 'aria-labelledby': capId, focusable: 'false' },
      s('circle', { cx: 50, cy: 50, r: 40, class: 'track', 'stroke-width': 10, fill: 'none' }),
      s('circle', {
        cx: 50, cy: 50, r: 40, fill: 'none', 'stroke-width': 10, class: `alloc ${level}`,
        'stroke-dasharray': `${(C * alloc) / 100} ${C}`, transform: 'rotate(-90 50 50)',
      }),
      s('circle', { cx: 50, cy: 50, r: 30, class: 'track', 'stroke-width': 5, fill: 'none' }),
      hasUsed
        ? s('circle', {
            cx: 50, cy: 50, r: 30, fill: 'none', 'stroke-width': 5, class: 'used',
            'stroke-dasharray': `${(Ci * used) / 100} ${Ci}`, transform: 'rotate(-90 50 50)',
          })
        : null,
      s('text', { x: 50, y: 55, 'text-anchor': 'middle', class: 'gauge-pct', text: `${num(alloc, 0)} %` }),
    ),
    h('figcaption', { id: capId }, h('strong', { text: t(`res.${res}`) }), h('br'), text),
  );
}

// Horizontal bars per node for one resource: allocatable (track), allocated (bar), used (mark).
export function nodeBars(nodes, res) {
  const capId = uid('bars');
  const descId = uid('desc');
  const rowH = 26;
  const labelW = 110;
  const W = 400;
  const max = Math.max(1, ...nodes.map((n) => Number((n[res] || {}).allocatable) || 0), ...nodes.map((n) => Number((n[res] || {}).allocated) || 0));
  const H = nodes.length * rowH + 8;
  const svg = s(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, class: 'bars', role: 'img', 'aria-labelledby': capId, 'aria-describedby': descId, focusable: 'false', preserveAspectRatio: 'xMinYMin meet' },
    nodes.map((n, i) => {
      const r = n[res] || {};
      const y = 4 + i * rowH;
      const scale = (v) => ((W - labelW - 8) * (Number(v) || 0)) / max;
      const parts = [
        s('text', { x: 0, y: y + 15, class: 'bar-label', text: String(n.name).slice(0, 16) }),
        s('rect', { x: labelW, y: y + 2, width: scale(r.allocatable), height: 18, class: 'cap', rx: 2 }),
        s('rect', { x: labelW, y: y + 6, width: scale(r.allocated), height: 10, class: 'alloc', rx: 1 }),
      ];
      if (r.used !== null && r.used !== undefined) {
        parts.push(s('rect', { x: labelW + scale(r.used) - 1.5, y: y, width: 3, height: 22, class: 'used' }));
      }
      return parts;
    }),
  );
  const rows = nodes.map((n) => {
    const r = n[res] || {};
    return [String(n.name), amount(res, r.allocated), amount(res, r.allocatable), amount(res, r.used)];
  });
  return h(
    'figure',
    { class: 'chart' },
    h('figcaption', { id: capId, text: t('dash.nodes.bars', { res: t(`res.${res}`) }) }),
    h('p', { id: descId, class: 'legend', text: t('dash.nodes.bars.desc') }),
    svg,
    h('details', null, h('summary', { text: t('dash.table.show') }), table(t('dash.nodes.bars', { res: t(`res.${res}`) }), [t('col.name'), t('col.allocated'), t('col.allocatable'), t('col.used')], rows)),
  );
}

// Headroom per flavor: one bar per flavor, its length the number that still fit.
export function headroomBars(list) {
  const capId = uid('head');
  const rowH = 24;
  const labelW = 110;
  const W = 400;
  const max = Math.max(1, ...list.map((f) => Number(f.fit) || 0));
  const svg = s(
    'svg',
    { viewBox: `0 0 ${W} ${list.length * rowH + 6}`, class: 'bars', role: 'img', 'aria-labelledby': capId, focusable: 'false' },
    list.map((f, i) => {
      const y = 3 + i * rowH;
      const w = ((W - labelW - 50) * (Number(f.fit) || 0)) / max;
      return [
        s('text', { x: 0, y: y + 15, class: 'bar-label', text: String(f.flavor).slice(0, 16) }),
        s('rect', { x: labelW, y: y + 3, width: Math.max(w, 1), height: 16, class: 'alloc', rx: 2 }),
        s('text', { x: labelW + w + 6, y: y + 15, class: 'bar-value', text: num(f.fit, 0) }),
      ];
    }),
  );
  return h(
    'figure',
    { class: 'chart' },
    h('figcaption', { id: capId, text: t('dash.headroom.desc') }),
    svg,
    table(t('dash.headroom'), [t('col.size'), t('col.fit')], list.map((f) => [`${f.flavor} (${f.vcpus} vCPU, ${amount('ram_mib', f.ram_mib)}, ${amount('disk_gib', f.disk_gib)})`, num(f.fit, 0)])),
  );
}

// The forecast of one resource: the daily peaks as points, the capacity as a line.
export function forecastChart(res, f) {
  const capId = uid('fc');
  const pts = Array.isArray(f.points) ? f.points : [];
  const W = 400;
  const H = 160;
  const padL = 60;
  const padB = 22;
  const cap = Number(f.capacity) || 0;
  const maxY = Math.max(1, cap, ...pts.map((p) => Number(p.peak) || 0)) * 1.1;
  const x = (i) => padL + ((W - padL - 8) * (pts.length > 1 ? i / (pts.length - 1) : 0.5));
  const y = (v) => H - padB - ((H - padB - 8) * (Number(v) || 0)) / maxY;
  const parts = [
    s('line', { x1: padL, y1: H - padB, x2: W - 4, y2: H - padB, class: 'axis' }),
    s('line', { x1: padL, y1: 4, x2: padL, y2: H - padB, class: 'axis' }),
    s('text', { x: padL - 4, y: y(maxY / 1.1) + 4, 'text-anchor': 'end', class: 'bar-value', text: amount(res, maxY / 1.1) }),
    s('text', { x: padL - 4, y: H - padB + 4, 'text-anchor': 'end', class: 'bar-value', text: '0' }),
  ];
  if (cap > 0) parts.push(s('line', { x1: padL, y1: y(cap), x2: W - 4, y2: y(cap), class: 'capline' }));
  if (pts.length > 1) {
    parts.push(s('polyline', { points: pts.map((p, i) => `${x(i)},${y(p.peak)}`).join(' '), class: 'trend', fill: 'none' }));
  }
  pts.forEach((p, i) => parts.push(s('circle', { cx: x(i), cy: y(p.peak), r: 3, class: 'point' })));
  if (pts.length) {
    parts.push(s('text', { x: padL, y: H - 6, class: 'bar-value', text: String(pts[0].day || '') }));
    parts.push(s('text', { x: W - 4, y: H - 6, 'text-anchor': 'end', class: 'bar-value', text: String(pts[pts.length - 1].day || '') }));
  }
  let verdict;
  if (f.days_to_full === 0) verdict = t('dash.forecast.full', { res: t(`res.${res}`) });
  else if (typeof f.days_to_full === 'number') verdict = t('dash.forecast.days', { res: t(`res.${res}`), days: num(f.days_to_full, 0) });
  else if (pts.length >= 7) verdict = t('dash.forecast.never', { res: t(`res.${res}`) });
  else verdict = t('dash.forecast.few', { res: t(`res.${res}`) });
  return h(
    'figure',
    { class: 'chart' },
    h('figcaption', { id: capId, text: t('dash.forecast.chart', { res: t(`res.${res}`) }) }),
    s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'line', role: 'img', 'aria-labelledby': capId, focusable: 'false' }, parts),
    h('p', { text: verdict }),
    pts.length
      ? h('details', null, h('summary', { text: t('dash.table.show') }), table(t('dash.forecast.chart', { res: t(`res.${res}`) }), [t('col.day'), t('col.peak')], pts.map((p) => [String(p.day), amount(res, p.peak)])))
      : null,
  );
}
