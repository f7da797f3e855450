// Small DOM and formatting helpers shared by the run and sample pages.

/** Create an element: h('div', {class: 'x', onclick: fn}, child, 'text', [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const SVG_NS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'text') el.textContent = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

export async function getJSON(url) {
  const res = await fetch(url, {cache: 'no-store'});
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return res.json();
}

export function fmtCost(v) {
  if (v === null || v === undefined) return '?';
  if (v === 0) return '$0';
  return '$' + v.toFixed(v < 1 ? 4 : 2);
}

export function fmtInt(v) {
  if (v === null || v === undefined) return '–';
  if (v >= 10000) return (v / 1000).toFixed(v >= 100000 ? 0 : 1) + 'k';
  return String(v);
}

export function fmtSecs(v) {
  if (v === null || v === undefined) return '–';
  if (v < 1) return (v * 1000).toFixed(0) + ' ms';
  if (v < 60) return v.toFixed(1) + ' s';
  return Math.floor(v / 60) + ' min ' + Math.round(v % 60) + ' s';
}

export function fmtBox(b) {
  if (!b) return '';
  return `(${b[0].toLocaleString('en-US')}, ${b[1].toLocaleString('en-US')}) ${b[2].toLocaleString('en-US')}×${b[3].toLocaleString('en-US')}`;
}

export function fmtArgs(args) {
  if (!args || typeof args !== 'object') return '';
  return Object.entries(args).map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`).join(', ');
}

export function pct(n, d) {
  return d ? (100 * n / d).toFixed(1) + '%' : '–';
}

/** A status or verdict badge. */
export function badge(text, kind) {
  return h('span', {class: `badge badge-${kind}`}, text);
}

export function verdictBadge(correct) {
  if (correct === true) return badge('correct', 'ok');
  if (correct === false) return badge('wrong', 'bad');
  return badge('not scored', 'muted');
}

export function statusBadge(status) {
  const kind = status === 'answered' ? 'neutral' : status === 'running' ? 'run' : 'warn';
  return badge(status, kind);
}

export function announce(text) {
  const live = document.getElementById('live');
  if (live) live.textContent = text;
}

/** A sample id, whole: it wraps when the column is narrow (ids that share a prefix and a suffix,
 * such as "synth_case-07-count-lesions", differ in the middle, so no part of one is ever cut). */
export function sampleIdEl(id, tag = 'span', attrs = {}) {
  const text = String(id);
  return h(tag, {...attrs, class: ((attrs.class || '') + ' sid').trim(), title: text}, text);
}

/** µm (or mm from 10 mm up) with thousands separators. */
export function fmtMicrons(um) {
  if (Math.abs(um) >= 10000) return `${(um / 1000).toFixed(2)} mm`;
  return `${Math.round(um).toLocaleString('en-US')} µm`;
}
