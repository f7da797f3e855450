// The run page: totals, filters, and the sortable sample table (fast for thousands of rows).
import {h, getJSON, fmtCost, fmtInt, pct, verdictBadge, statusBadge, announce, sampleIdEl} from './util.js';

const COLUMNS = [
  {key: 'sample_id', label: 'Sample', cls: 'c-id'},
  {key: 'task', label: 'Task', cls: 'c-task'},
  {key: 'question', label: 'Question', cls: 'c-q'},
  {key: 'answer', label: 'Answer', cls: 'c-ans'},
  {key: 'truth', label: 'Truth', cls: 'c-ans'},
  {key: 'correct', label: 'Result', cls: 'c-res'},
  {key: 'status', label: 'Status', cls: 'c-status'},
  {key: 'steps', label: 'Steps', cls: 'c-num', num: true},
  {key: 'cost_usd', label: 'Cost', cls: 'c-num', num: true},
];
const CHUNK = 400;
const POLL_MS = 4000;

let state = null;  // {data, filters, sort, timer, renderToken}

function parseQuery(query) {
  const p = new URLSearchParams(query || '');
  return {
    filters: {q: p.get('q') || '', task: p.get('task') || '', correct: p.get('correct') || '', status: p.get('status') || ''},
    sort: p.get('sort') || '',
  };
}

function writeQuery() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filters)) if (v) p.set(k, v);
  if (state.sort) p.set('sort', state.sort);
  const q = p.toString();
  history.replaceState(null, '', '#/' + (q ? '?' + q : ''));
}

function matches(r, f, needle) {
  if (f.task && r.task !== f.task) return false;
  if (f.status && r.status !== f.status) return false;
  if (f.correct === 'correct' && r.correct !== true) return false;
  if (f.correct === 'wrong' && r.correct !== false) return false;
  if (f.correct === 'unscored' && r.correct !== null) return false;
  if (needle) {
    const hay = `${r.sample_id} ${r.question} ${r.answer || ''} ${r.truth || ''}`.toLowerCase();
    if (!hay.includes(needle)) return false;
  }
  return true;
}

function sortValue(r, key) {
  const v = r[key];
  if (key === 'correct') return v === true ? 2 : v === false ? 1 : 0;
  return v;
}

function visibleRows() {
  const f = state.filters;
  const needle = f.q.trim().toLowerCase();
  let rows = state.data.samples.filter(r => matches(r, f, needle));
  if (state.sort) {
    const desc = state.sort.startsWith('-');
    const key = desc ? state.sort.slice(1) : state.sort;
    const col = COLUMNS.find(c => c.key === key);
    const coll = new Intl.Collator('en', {numeric: true, sensitivity: 'base'});
    rows = rows.slice().sort((a, b) => {
      const va = sortValue(a, key), vb = sortValue(b, key);
      if (va === vb) return 0;
      if (va === null || va === undefined) return 1;  // blanks last either way
      if (vb === null || vb === undefined) return -1;
      const c = col && col.num || typeof va === 'number' ? va - vb : coll.compare(String(va), String(vb));
      return desc ? -c : c;
    });
  }
  return rows;
}

function rowEl(r) {
  const href = r.trace ? `#/s/${encodeURIComponent(r.trace)}` : null;
  const tr = document.createElement('tr');
  if (href) tr.dataset.href = href;
  const idCell = href ? sampleIdEl(r.sample_id, 'a', {href}) : sampleIdEl(r.sample_id, 'span', {class: 'no-trace'});
  if (r.repeat) idCell.append(h('span', {class: 'repeat'}, ` #${r.repeat}`));
  const cells = [
    idCell, r.task || '–', r.question || '', r.answer ?? '–', r.truth ?? '–',
    verdictBadge(r.correct), statusBadge(r.status), r.steps ?? '–', fmtCost(r.cost_usd),
  ];
  cells.forEach((c, i) => {
    const td = document.createElement('td');
    td.className = COLUMNS[i].cls;
    if (c instanceof Node) td.append(c); else td.textContent = String(c);
    if (i === 2 || i === 3 || i === 4) td.title = String(c);
    tr.append(td);
  });
  if (r.error && r.status !== 'answered') tr.title = r.error;
  return tr;
}

function renderBody(tbody) {
  const rows = visibleRows();
  const token = (state.renderToken = (state.renderToken || 0) + 1);
  tbody.replaceChildren();
  let i = 0;
  const step = () => {
    if (token !== state.renderToken) return;  // a newer render superseded this one
    const frag = document.createDocumentFragment();
    const end = Math.min(rows.length, i + CHUNK);
    for (; i < end; i++) frag.append(rowEl(rows[i]));
    tbody.append(frag);
    if (i < rows.length) requestAnimationFrame(step);
  };
  step();
  const total = state.data.samples.length;
  document.getElementById('row-count').textContent =
    rows.length === total ? `${total} samples` : `${rows.length} of ${total} samples`;
  document.getElementById('empty').hidden = rows.length > 0;
  announce(`${rows.length} samples shown`);
}

function stats(d) {
  const card = (label, value, sub) => h('div', {class: 'stat'},
    h('div', {class: 'stat-label'}, label), h('div', {class: 'stat-value'}, value), sub ? h('div', {class: 'stat-sub'}, sub) : null);
  return h('section', {class: 'stats', 'aria-label': 'Run totals'},
    card('Samples', String(d.n_samples), d.n_running ? `${d.n_running} running` : 'all finished'),
    card('Accuracy', pct(d.n_correct, d.n_scored), d.n_scored ? `${d.n_correct} correct of ${d.n_scored} scored` : 'no ground truth'),
    card('Cost', fmtCost(d.cost_usd), d.cost_unknown ? `${d.cost_unknown} unknown` : 'total'),
    card('Model', d.model || '–', d.preset ? `preset ${d.preset}` : null),
  );
}

function select(id, label, value, options) {
  return h('label', {class: 'field'}, h('span', {}, label),
    h('select', {id, name: id},
      options.map(([v, t]) => h('option', {value: v, selected: v === value}, t))));
}

function headerRow() {
  const tr = h('tr');
  for (const c of COLUMNS) {
    const sorted = state.sort === c.key ? 'ascending' : state.sort === '-' + c.key ? 'descending' : 'none';
    const th = h('th', {scope: 'col', class: c.cls, 'aria-sort': sorted},
      h('button', {type: 'button', class: 'sort', dataset: {key: c.key}}, c.label,
        h('span', {class: 'sort-ind', 'aria-hidden': 'true'}, sorted === 'ascending' ? '▲' : sorted === 'descending' ? '▼' : '')));
    tr.append(th);
  }
  return tr;
}

function controls(d) {
  const f = state.filters;
  return h('form', {class: 'filters', role: 'search', onsubmit: e => e.preventDefault()},
    h('label', {class: 'field field-grow'}, h('span', {}, 'Search'),
      h('input', {type: 'search', id: 'f-q', value: f.q, placeholder: 'sample, question, answer…', autocomplete: 'off'})),
    select('f-task', 'Task', f.task, [['', 'all tasks'], ...d.tasks.map(t => [t, t])]),
    select('f-correct', 'Result', f.correct, [['', 'all'], ['correct', 'correct'], ['wrong', 'wrong'], ['unscored', 'not scored']]),
    select('f-status', 'Status', f.status, [['', 'all'], ...d.statuses.map(t => [t, t])]),
    h('div', {class: 'filters-end'},
      h('span', {id: 'row-count', class: 'muted', 'aria-live': 'off'}),
      h('button', {type: 'button', id: 'refresh', class: 'btn'}, 'Refresh')));
}

function wire(root, tbody, thead) {
  const rerender = () => { writeQuery(); renderBody(tbody); };
  root.querySelector('#f-q').addEventListener('input', e => { state.filters.q = e.target.value; rerender(); });
  for (const [id, key] of [['f-task', 'task'], ['f-correct', 'correct'], ['f-status', 'status']]) {
    root.querySelector('#' + id).addEventListener('change', e => { state.filters[key] = e.target.value; rerender(); });
  }
  thead.addEventListener('click', e => {
    const btn = e.target.closest('button.sort');
    if (!btn) return;
    const key = btn.dataset.key;
    state.sort = state.sort === key ? '-' + key : state.sort === '-' + key ? '' : key;
    thead.replaceChildren(headerRow());
    thead.querySelector(`button[data-key="${key}"]`).focus();
    rerender();
  });
  tbody.addEventListener('click', e => {
    if (e.target.closest('a')) return;
    const tr = e.target.closest('tr[data-href]');
    if (tr && !window.getSelection().toString()) location.hash = tr.dataset.href;
  });
  root.querySelector('#refresh').addEventListener('click', () => refresh(root));
}

async function refresh(root) {
  const d = await getJSON('api/run');
  state.data = d;
  root.querySelector('.stats').replaceWith(stats(d));
  const keepFocus = document.activeElement && document.activeElement.id;
  // new tasks or statuses may have appeared: rebuild those two selects in place
  root.querySelector('.filters').replaceWith(controls(d));
  wire(root, root.querySelector('tbody'), root.querySelector('thead'));
  if (keepFocus && root.querySelector('#' + keepFocus)) root.querySelector('#' + keepFocus).focus();
  renderBody(root.querySelector('tbody'));
  schedule(root);
}

function schedule(root) {
  clearTimeout(state.timer);
  if (state.data.n_running > 0 || state.data.n_samples === 0) {
    state.timer = setTimeout(() => { if (document.body.contains(root)) refresh(root).catch(() => schedule(root)); }, POLL_MS);
  }
}

export async function renderRun(main, query, setCrumbs) {
  const d = await getJSON('api/run');
  const q = parseQuery(query);
  if (state && state.timer) clearTimeout(state.timer);
  state = {data: d, filters: q.filters, sort: q.sort, timer: null};
  setCrumbs(d.runs_home ? [['All runs', d.runs_home], [d.name, '#/']] : [[d.name, '#/']], d);
  document.title = `${d.name} · slidescout`;
  const thead = h('thead', {}, headerRow());
  const tbody = h('tbody');
  const root = h('div', {class: 'run-page'},
    h('h1', {class: 'sr-only'}, `Run ${d.name}`),
    stats(d),
    controls(d),
    d.broken.length ? h('p', {class: 'notice notice-warn'},
      `${d.broken.length} trace file(s) could not be read: `, d.broken.map(b => b.file).join(', ')) : null,
    h('div', {class: 'table-wrap'},
      h('table', {class: 'samples', 'aria-describedby': 'row-count'},
        h('caption', {class: 'sr-only'}, 'Samples of this run; activate a sample to open its trace'),
        thead, tbody)),
    h('p', {id: 'empty', class: 'empty', hidden: true}, d.n_samples ? 'No sample matches these filters.' : 'No samples yet. This page refreshes while the run is being written.'));
  main.replaceChildren(root);
  wire(root, tbody, thead);
  renderBody(tbody);
  schedule(root);
}

export function leaveRun() {
  if (state && state.timer) clearTimeout(state.timer);
}
