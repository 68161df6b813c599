// DOM and API helpers. Text from the server only ever becomes text nodes (textContent),
// never markup: the page builds every element itself.

const SVG_NS = 'http://www.w3.org/2000/svg';
let idSeq = 0;

export function uid(prefix) {
  idSeq += 1;
  return `${prefix || 'id'}-${idSeq}`;
}

function put(el, attrs, children) {
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') el.textContent = String(v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h('p', {class: 'x'}, 'text', child, [more]) → an HTML element.
export function h(tag, attrs, ...children) {
  return put(document.createElement(tag), attrs, children);
}

// s('rect', {x: 1}) → an SVG element.
export function s(tag, attrs, ...children) {
  return put(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// ---- API -----------------------------------------------------------------------------

const session = { csrf: null, onUnauth: null };

export function setCsrf(token) {
  session.csrf = token || null;
}

export function onUnauthenticated(fn) {
  session.onUnauth = fn;
}

// Calls the API. Never throws: {ok, status, data} with status 0 when the server could not
// be reached. Changes carry the session's CSRF token.
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, data: null };
  }
  let data = null;
  if (r.status !== 204 && r.status !== 304) {
    try {
      data = await r.json();
    } catch (e) {
      data = null;
    }
  }
  if (r.status === 401 && path !== '/v1/session' && session.onUnauth) session.onUnauth();
  return { ok: r.ok, status: r.status, data };
}

// The detail of a problem answer, or a generic text.
export function detail(res, fallback) {
  if (res && res.data && typeof res.data.detail === 'string' && res.data.detail) return res.data.detail;
  return fallback;
}
