// slidescout studio: pick a slide, ask, watch the agent's regions appear, stop, follow up, hint a region.
// Live events come over Server-Sent Events (api/sessions/<id>/events); a reload reattaches.
import {h, getJSON, fmtCost, fmtInt, fmtSecs, fmtBox, fmtArgs, announce, statusBadge} from '../static/util.js';
import {deepZoom, flatView} from './slideview.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');
let ws = null;  // the open workspace

function setCrumbs(items) {
  const ol = h('ol');
  items.forEach(([label, href], i) => {
    const last = i === items.length - 1;
    ol.append(h('li', {}, href && !last ? h('a', {href}, label) : h('span', {'aria-current': last ? 'page' : null}, label)));
  });
  crumbs.replaceChildren(ol);
}

async function postJSON(url, body) {
  const res = await fetch(url, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body || {})});
  let data = null;
  try { data = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
  return data;
}

function fmtSize(s) {
  if (!s.width) return '';
  return `${s.width.toLocaleString('en-US')} × ${s.height.toLocaleString('en-US')} px`;
}

// ------------------------------------------------------------------------------------------
// Home: the slides of the folder, the sessions of this studio, earlier runs

async function renderHome() {
  const d = await getJSON('api/studio');
  setCrumbs([[d.folder, null]]);
  document.title = `${d.folder} · slidescout studio`;
  const card = s => h('li', {class: 'slide-card'},
    h('a', {href: `#/slide/${s.key}`, 'aria-label': `Open ${s.name}`},
      h('div', {class: 'thumb'}, s.error ? h('span', {class: 'err small'}, 'cannot be opened') : h('img', {src: s.thumbnail, alt: '', loading: 'lazy'})),
      h('div', {class: 'info'}, h('div', {class: 'name'}, s.name),
        s.error ? h('div', {class: 'err'}, s.error) : [
          h('div', {}, fmtSize(s)),
          h('div', {}, s.mpp ? `${s.mpp.toFixed(3)} µm/px${s.mpp_source && s.mpp_source !== 'metadata' ? ` (${s.mpp_source})` : ''}` : 'µm/px unknown',
            s.objective_power ? ` · ${s.objective_power}×` : ''),
          h('div', {}, s.vendor || '')])));
  const sessions = d.sessions.map(s => h('li', {},
    h('a', {class: 'rname', href: `#/session/${s.id}`}, s.slide_name),
    h('span', {}, `${s.turns.length} question${s.turns.length === 1 ? '' : 's'}`),
    s.running ? statusBadge('running') : null,
    h('span', {class: 'muted'}, `${s.model} · ${s.preset}`),
    h('a', {href: `viewer/runs/${encodeURIComponent(s.run)}/`}, 'open in the viewer')));
  const runs = d.runs.map(r => h('li', {},
    h('a', {class: 'rname', href: r.href}, r.name),
    h('span', {class: 'muted'}, [r.slide_name, r.model, r.preset].filter(Boolean).join(' · ')),
    h('span', {class: 'muted'}, `${r.turns} turn${r.turns === 1 ? '' : 's'}`)));
  main.replaceChildren(h('div', {class: 'home'},
    h('h1', {}, `${d.slides.length} slide${d.slides.length === 1 ? '' : 's'} in ${d.folder}`),
    d.slides.length ? h('ul', {class: 'slide-grid', 'aria-label': 'Slides'}, d.slides.map(card))
      : h('p', {class: 'empty'}, 'No slide files in this folder.'),
    sessions.length ? [h('h2', {}, 'Conversations running in this studio'), h('ul', {class: 'runs-list', 'aria-label': 'Conversations'}, sessions)] : null,
    h('h2', {}, 'Earlier runs'),
    runs.length ? h('ul', {class: 'runs-list', 'aria-label': 'Earlier runs'}, runs) : h('p', {class: 'muted'}, 'None yet: each conversation is recorded as a run folder.'),
    h('p', {class: 'muted small'}, h('a', {href: 'viewer/'}, 'All runs in the viewer'), ' (compare two runs there).')));
}

// ------------------------------------------------------------------------------------------
// The timeline: the questions, the agent's steps (image, reasoning, tool call, tokens, cost,
// latency) and how each turn ended; region numbers run on across the turns

function layout() {
  const boxes = [], items = [];
  let offset = 0;
  const running = ws.session && ws.session.running;
  for (const t of ws.turns.values()) {
    const view = t.view;
    const regions = view ? view.regions : [];
    const num = n => offset + n;
    for (const r of regions) {
      if (r.dup_of) continue;
      boxes.push({n: num(r.n), ns: [num(r.n), ...r.also.map(num)], box: r.box, turn: t.turn.n, entry: r.entry});
    }
    const pending = t.turn.status === 'running' && view ? view.pending : [];
    pending.forEach((p, i) => boxes.push({n: num(regions.length + i + 1), ns: [num(regions.length + i + 1)], box: p.box, pending: true, turn: t.turn.n, entry: null}));
    if (t.turn.region) boxes.push({kind: 'hint', box: t.turn.region, label: `hint · question ${t.turn.n}`});
    items.push({turn: t, offset, pending});
    offset += regions.length;
  }
  const numbered = boxes.filter(b => b.n);
  if (running && numbered.length) numbered.reduce((a, b) => (b.n > a.n ? b : a)).latest = true;
  if (ws.hint) boxes.push({kind: 'hint', box: ws.hint, label: 'hint (next question)'});
  return {boxes, items};
}

function figure(img, n) {
  const cap = [n ? `#${n}` : null, img.label, img.box ? fmtBox(img.box) : null, img.mpp ? `${img.mpp.toFixed(2)} µm/px` : null].filter(Boolean).join(' · ');
  return h('figure', {class: 'seen'}, img.url ? h('img', {src: img.url, alt: `Image the model saw: ${cap}`, width: img.width, height: img.height, loading: 'lazy'}) : null,
    h('figcaption', {}, cap));
}

function stepCard(e, t, offset, pending) {
  const tools = e.calls.map(c => c.name);
  const title = e.answer ? 'Answer' : tools.length ? tools.join(', ') : e.step === null ? 'Overview' : 'Thought';
  const regions = e.regions.map(n => offset + n);
  const waiting = e.calls.some(c => !c.result) && t.turn.status === 'running';
  if (waiting) regions.push(...pending.filter(p => p.step === e.step).map((_, i) => offset + t.view.regions.length + i + 1));
  const u = e.usage;
  const li = h('li', {class: 'step' + (e.answer ? ' is-answer' : '') + (e.errors.length ? ' has-error' : '') + (waiting ? ' pending' : ''),
    tabindex: 0, dataset: {turn: t.turn.n, entry: e.index, regions: regions.join(' ')},
    'aria-label': `Question ${t.turn.n}, ${e.step === null ? 'start' : 'step ' + (e.step + 1)}: ${title}${regions.length ? ', regions ' + regions.join(', ') : ''}`},
    h('div', {class: 'step-head'},
      h('span', {class: 'step-no', 'aria-hidden': 'true'}, e.step === null ? '·' : String(e.step + 1)),
      h('span', {class: 'step-title'}, title),
      regions.length ? h('span', {class: 'step-regions'}, regions.map(n => h('span', {class: 'rnum'}, String(n)))) : null,
      h('span', {class: 'step-metrics'},
        u ? h('span', {title: 'input → output tokens'}, `${fmtInt(u.input_tokens)} → ${fmtInt(u.output_tokens)} tok`) : null,
        u ? h('span', {title: 'cost'}, fmtCost(u.cost_usd)) : null,
        e.latency_s !== null ? h('span', {title: 'model latency'}, fmtSecs(e.latency_s)) : null)));
  const body = h('div', {class: 'step-body'});
  if (e.shown.length) body.append(h('div', {class: 'seen-row'}, e.shown.map(img => figure(img, null))));
  if (e.reasoning.length) body.append(h('details', {class: 'reasoning'}, h('summary', {}, 'Reasoning summary'), h('div', {class: 'pre'}, e.reasoning.join('\n\n'))));
  if (e.thought && !(e.answer && e.answer.text.trim() === e.thought.trim())) body.append(h('div', {class: 'thought pre'}, e.thought));
  for (const c of e.calls) {
    const call = h('div', {class: 'call'}, h('code', {class: 'call-sig'}, h('span', {class: 'fn'}, c.name), '(', c.raw_arguments || fmtArgs(c.arguments), ')'));
    const res = c.result;
    if (!res) call.append(h('p', {class: 'muted small'}, t.turn.status === 'running' ? h('span', {class: 'dots'}, 'reading the region') : 'no result (the run ended)'));
    else {
      if (res.error) call.append(h('p', {class: 'err'}, h('strong', {}, 'Error: '), res.error));
      if (res.text) call.append(h('details', {class: 'result'}, h('summary', {}, 'Tool result'), h('div', {class: 'pre'}, res.text)));
      if (res.images.length) call.append(h('div', {class: 'seen-row'}, res.images.map(img => figure(img, img.region ? offset + img.region : null))));
    }
    body.append(call);
  }
  for (const err of e.errors) body.append(h('p', {class: 'err'}, h('strong', {}, err.fatal ? 'Fatal error: ' : 'Error: '), err.message));
  if (e.answer) body.append(h('div', {class: 'answer'}, h('span', {class: 'k'}, e.answer.forced ? 'Final answer (forced)' : 'Final answer'), h('div', {class: 'pre'}, e.answer.text)));
  li.append(body);
  return li;
}

function askItem(turn) {
  return h('li', {class: 'ask', dataset: {turn: turn.n}},
    h('div', {class: 'step-head'}, h('span', {class: 'step-no', 'aria-hidden': 'true'}, 'Q'),
      h('span', {class: 'step-title'}, `Question ${turn.n}`),
      turn.region ? h('span', {class: 'chip', title: 'region hint, level-0 pixels'}, `region ${fmtBox(turn.region)}`) : null),
    h('div', {class: 'q'}, turn.question),
    turn.options.length ? h('ol', {class: 'opts small'}, turn.options.map(o => h('li', {}, o))) : null);
}

function endItem(turn) {
  if (turn.status === 'running') return null;
  if (turn.status === 'answered') {
    return turn.answer_label ? h('li', {class: 'end answered', dataset: {turn: turn.n}},
      h('div', {class: 'step-head'}, statusBadge('answered'), h('span', {}, 'Answer: ', h('strong', {}, turn.answer_label)))) : null;
  }
  return h('li', {class: 'end ' + (turn.status === 'stopped' ? 'stopped' : 'has-error'), dataset: {turn: turn.n}},
    h('div', {class: 'step-head'}, statusBadge(turn.status), h('span', {class: 'muted small'}, turn.error || '')));
}

function renderTimeline() {
  const {boxes, items} = layout();
  const ol = ws.el.timeline;
  const scroller = ws.el.scroll;
  const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  const focused = document.activeElement && document.activeElement.closest('li.step');
  const focusKey = focused ? `${focused.dataset.turn}:${focused.dataset.entry}` : null;
  const out = [];
  for (const {turn: t, offset, pending} of items) {
    out.push(askItem(t.turn));
    for (const e of t.view ? t.view.steps : []) out.push(stepCard(e, t, offset, pending));
    out.push(endItem(t.turn));
  }
  ol.replaceChildren(...out.filter(Boolean));
  if (focusKey) { const [tn, en] = focusKey.split(':'); const li = ol.querySelector(`li.step[data-turn="${tn}"][data-entry="${en}"]`); if (li) li.focus({preventScroll: true}); }
  if (atEnd || ws.el.follow.checked) scroller.scrollTop = scroller.scrollHeight;
  ws.el.empty.hidden = items.length > 0;
  if (ws.view) ws.view.draw(boxes);
  const numbered = boxes.filter(b => b.n).length;
  if (ws.el.follow.checked && ws.view && numbered > ws.seenBoxes) {
    const newest = boxes.filter(b => b.n).reduce((a, b) => (b.n > a.n ? b : a));
    ws.view.fly(newest.box);
  }
  ws.seenBoxes = numbered;
  renderHead();
}

function renderHead() {
  const s = ws.session;
  const turns = [...ws.turns.values()];
  const cur = turns.at(-1);
  let steps = 0, cost = 0, unknown = false;
  for (const t of turns) {
    const view = t.view;
    steps += view ? view.n_steps : 0;
    const c = view ? view.usage.cost_usd : t.turn.cost_usd;
    if (c === null || c === undefined) unknown = true; else cost += c;
  }
  const running = !!(s && s.running);
  ws.el.counters.replaceChildren(
    h('span', {}, 'Steps ', h('b', {id: 'step-count'}, String(steps))),
    h('span', {}, 'Cost ', h('b', {id: 'cost'}, unknown ? 'unknown' : fmtCost(cost))),
    h('span', {id: 'run-status'}, running ? h('span', {class: 'badge badge-run dots'}, 'working') : cur ? statusBadge(cur.turn.status) : h('span', {class: 'muted'}, 'ready')));
  ws.el.ask.textContent = s && turns.length ? 'Follow up' : 'Ask';
  ws.el.ask.disabled = running || ws.sending;
  ws.el.stop.disabled = !running;
  ws.el.fresh.hidden = !s;
  for (const el of ws.el.settings) el.disabled = !!s;
  ws.el.settingsRow.hidden = !!s;
  if (s) [ws.el.settings[0].value, ws.el.settings[1].value, ws.el.settings[2].value] = [s.model, s.preset, s.max_steps];
  ws.el.settingsNote.textContent = s ? `${s.model} · ${s.preset} · up to ${s.max_steps} steps per question` : '';
  if (s && ws.el.viewerLink) ws.el.viewerLink.href = `viewer/runs/${encodeURIComponent(s.run)}/`;
  if (ws.el.viewerLink) ws.el.viewerLink.hidden = !s;
}

// ------------------------------------------------------------------------------------------
// Live events

function attach(sessionId) {
  if (ws.es) ws.es.close();
  ws.turns = new Map();
  const es = new EventSource(`api/sessions/${encodeURIComponent(sessionId)}/events`);
  ws.es = es;
  const on = (kind, fn) => es.addEventListener(kind, ev => { if (ws && ws.es === es) fn(JSON.parse(ev.data)); });
  on('session', d => { ws.session = d; renderHead(); });
  on('turn', d => {
    ws.turns.set(d.n, {turn: d, view: null});
    if (ws.session) ws.session.running = true;
    renderTimeline();
    announce(`Question ${d.n} sent`);
  });
  on('snapshot', d => {
    const t = ws.turns.get(d.turn);
    if (!t) return;
    t.view = d.view;
    renderTimeline();
  });
  on('end', d => {
    const t = ws.turns.get(d.n);
    if (t) t.turn = {...t.turn, ...d};
    ws.session = d.session;
    renderTimeline();
    announce(d.status === 'answered' ? `Answered: ${d.answer_label || ''}` : `Question ${d.n} ended: ${d.status}`);
  });
  es.onerror = () => { /* the browser reconnects by itself, sending the last event id */ };
}

// ------------------------------------------------------------------------------------------
// The workspace

function composer(d, slide) {
  const question = h('textarea', {id: 'question', name: 'question', rows: 2, placeholder: 'e.g. What is the primary diagnosis? Is there lymphovascular invasion?', required: true});
  const options = h('textarea', {id: 'options', name: 'options', rows: 3, placeholder: 'one option per line (leave empty for a free answer)'});
  const region = h('input', {id: 'region', name: 'region', type: 'text', placeholder: 'x, y, w, h', autocomplete: 'off', spellcheck: 'false'});
  const model = h('input', {id: 'model', name: 'model', type: 'text', value: d.defaults.model, list: 'models', autocomplete: 'off', spellcheck: 'false'});
  const preset = h('select', {id: 'preset', name: 'preset'}, d.presets.map(p => h('option', {value: p.name, selected: p.name === d.defaults.preset, title: p.description}, p.name)));
  const steps = h('input', {id: 'max-steps', name: 'max_steps', type: 'number', min: 1, max: 100, value: d.defaults.max_steps});
  const ask = h('button', {type: 'submit', class: 'btn btn-primary', id: 'ask'}, 'Ask');
  const stop = h('button', {type: 'button', class: 'btn btn-stop', id: 'stop', disabled: true}, 'Stop');
  const fresh = h('button', {type: 'button', class: 'btn', id: 'new-conversation', hidden: true}, 'New conversation');
  const error = h('p', {class: 'form-error', role: 'alert', id: 'form-error'});
  const note = h('span', {class: 'settings-note'});
  const form = h('form', {class: 'composer', 'aria-label': 'Ask the agent'},
    h('label', {class: 'q', for: 'question'}, 'Question', question),
    h('details', {}, h('summary', {}, 'Options'), h('label', {class: 'sr-only', for: 'options'}, 'Options'), options),
    h('div', {class: 'row'},
      h('label', {class: 'field f-region'}, h('span', {}, 'Region hint (x, y, w, h in level-0 px)'), region),
      h('button', {type: 'button', class: 'btn btn-small', id: 'draw', 'aria-pressed': 'false'}, 'Draw region'),
      h('button', {type: 'button', class: 'btn btn-small', id: 'clear-region'}, 'Clear region')),
    h('div', {class: 'row', id: 'settings-row'},
      h('label', {class: 'field f-model'}, h('span', {}, 'Model'), model,
        h('datalist', {id: 'models'}, ['openai:gpt-5', 'anthropic:claude-sonnet-4-5', 'expert'].map(m => h('option', {value: m})))),
      h('label', {class: 'field'}, h('span', {}, 'Preset'), preset),
      h('label', {class: 'field f-steps'}, h('span', {}, 'Max steps'), steps)),
    note,
    h('div', {class: 'actions'}, ask, stop, fresh), error);
  Object.assign(ws.el, {question, options, region, ask, stop, fresh, error, settings: [model, preset, steps], settingsNote: note, form});
  ws.el.settingsRow = form.querySelector('#settings-row');
  form.addEventListener('submit', e => { e.preventDefault(); send(slide); });
  question.addEventListener('keydown', e => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(slide); } });
  stop.addEventListener('click', async () => {
    stop.disabled = true;
    try { await postJSON(`api/sessions/${ws.session.id}/stop`, {}); announce('Stopping'); } catch (err) { error.textContent = err.message; }
  });
  fresh.addEventListener('click', () => { location.hash = `#/slide/${slide.key}`; });
  region.addEventListener('change', () => setHint(parseBox(region.value), false));
  form.querySelector('#clear-region').addEventListener('click', () => setHint(null));
  const draw = form.querySelector('#draw');
  draw.addEventListener('click', () => {
    const on = draw.getAttribute('aria-pressed') !== 'true';
    draw.setAttribute('aria-pressed', String(on));
    ws.el.stage.classList.toggle('drawing', on);
    if (!on) { ws.view.cancelDraw(); return; }
    announce('Drag on the slide to draw the region');
    ws.view.drawRegion(box => {
      draw.setAttribute('aria-pressed', 'false');
      ws.el.stage.classList.remove('drawing');
      if (box) setHint(box);
    });
  });
  return form;
}

function parseBox(text) {
  const v = String(text || '').split(/[\s,]+/).filter(Boolean).map(Number);
  return v.length === 4 && v.every(Number.isFinite) && v[2] > 0 && v[3] > 0 ? v.map(Math.round) : null;
}

function setHint(box, fill = true) {
  ws.hint = box;
  if (fill || !box) ws.el.region.value = box ? box.join(', ') : '';
  renderTimeline();
  if (box) announce(`Region hint set: ${fmtBox(box)}`);
}

async function send(slide) {
  const el = ws.el;
  el.error.textContent = '';
  const question = el.question.value.trim();
  if (!question) { el.error.textContent = 'Type a question first.'; el.question.focus(); return; }
  const region = el.region.value.trim() ? parseBox(el.region.value) : null;
  if (el.region.value.trim() && !region) { el.error.textContent = 'Region hint: give four numbers x, y, w, h (level-0 pixels).'; return; }
  const options = el.options.value.split('\n').map(s => s.trim()).filter(Boolean);
  ws.sending = true;
  renderHead();
  try {
    if (!ws.session) {
      const [model, preset, steps] = el.settings.map(x => x.value);
      const s = await postJSON('api/sessions', {slide: slide.key, question, options, region, model, preset, max_steps: steps});
      ws.session = s;
      history.replaceState(null, '', `#/session/${s.id}`);
      current = `session:${s.id}`;
      setCrumbs([[ws.folder, '#/'], [slide.name, null]]);
      attach(s.id);
    } else {
      await postJSON(`api/sessions/${ws.session.id}/turns`, {question, options, region});
    }
    el.question.value = '';
    el.options.value = '';
    el.options.closest('details').open = false;
    ws.hint = null;
    el.region.value = '';
  } catch (err) {
    el.error.textContent = err.message;
  } finally {
    ws.sending = false;
    renderHead();
  }
}

async function renderWorkspace(slideKey, sessionId) {
  const d = await getJSON('api/studio');
  let session = null;
  if (sessionId) {
    session = await getJSON(`api/sessions/${encodeURIComponent(sessionId)}`);
    slideKey = session.slide;
  }
  const slide = d.slides.find(s => s.key === slideKey);
  if (!slide) throw new Error('this slide is not in the folder any more');
  if (slide.error) throw new Error(`${slide.name} cannot be opened: ${slide.error}`);
  ws = {slide, session, turns: new Map(), view: null, es: null, hint: null, seenBoxes: 0, sending: false, folder: d.folder, el: {}};
  setCrumbs([[d.folder, '#/'], [slide.name, null]]);
  document.title = `${slide.name} · slidescout studio`;
  const stage = h('div', {id: 'slide-view', class: 'slide-view', role: 'region', 'aria-label': 'Slide with the regions the agent viewed'});
  const follow = h('input', {type: 'checkbox', id: 'follow', checked: true});
  const home = h('button', {type: 'button', class: 'btn btn-small', id: 'home'}, 'Whole slide');
  const viewerLink = h('a', {class: 'small', id: 'viewer-link', hidden: true}, 'Open this run in the viewer');
  const timeline = h('ol', {class: 'steps', id: 'timeline', 'aria-label': 'Timeline'});
  const empty = h('p', {class: 'empty small'}, 'Ask a question: the agent\u2019s steps appear here as it works, and each region it asks for appears on the slide.');
  const scroll = h('div', {class: 'timeline-scroll'}, timeline, empty);
  const counters = h('div', {class: 'counters', role: 'status', 'aria-live': 'polite'});
  Object.assign(ws.el, {stage, follow, timeline, scroll, counters, viewerLink, empty});
  const root = h('div', {class: 'studio-page'},
    h('div', {class: 'workspace'},
      h('section', {class: 'viewer-pane', 'aria-label': 'Slide'},
        h('div', {class: 'viewer-bar', role: 'toolbar', 'aria-label': 'View'},
          h('label', {class: 'toggle'}, follow, 'Follow the agent'),
          h('span', {class: 'muted small'}, [fmtSize(slide), slide.mpp ? `${slide.mpp.toFixed(3)} µm/px` : 'µm/px unknown', slide.vendor].filter(Boolean).join(' · ')),
          h('span', {class: 'spacer'}), viewerLink, home),
        stage,
        h('p', {class: 'legend small muted'}, 'Numbered boxes: regions the agent asked for, in order (dashed while being read). Draw region: drag on the slide to point the agent at a region.')),
      h('section', {class: 'side', 'aria-label': 'Conversation'},
        h('div', {class: 'side-head'}, h('h1', {}, slide.name), counters),
        scroll,
        composer(d, slide))));
  main.replaceChildren(root);
  home.addEventListener('click', () => ws.view && ws.view.home());
  const onBox = b => {
    const li = timeline.querySelector(`li.step[data-regions~="${b.n}"]`);
    if (!li) return;
    timeline.querySelectorAll('li.selected').forEach(x => x.classList.remove('selected'));
    li.classList.add('selected');
    li.scrollIntoView({block: 'nearest'});
    li.focus({preventScroll: true});
  };
  const flyToStep = li => {
    const ns = (li.dataset.regions || '').split(' ').filter(Boolean).map(Number);
    const {boxes} = layout();
    const b = boxes.find(x => x.n && ns.includes(x.n)) || boxes.find(x => x.ns && x.ns.some(n => ns.includes(n)));
    if (b && ws.view) ws.view.fly(b.box);
  };
  timeline.addEventListener('click', ev => {
    const li = ev.target.closest('li.step');
    if (!li || ev.target.closest('summary, a, button')) return;
    flyToStep(li);
  });
  // the keyboard: Enter flies to a step's region, ↑/↓ (or k/j) move between the steps
  timeline.addEventListener('keydown', ev => {
    const li = ev.target.closest('li.step');
    if (!li || ev.target !== li) return;
    const steps = [...timeline.querySelectorAll('li.step')];
    const i = steps.indexOf(li);
    let next = null;
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); flyToStep(li); return; }
    if (ev.key === 'ArrowDown' || ev.key === 'j') next = steps[i + 1];
    if (ev.key === 'ArrowUp' || ev.key === 'k') next = steps[i - 1];
    if (next) { ev.preventDefault(); next.focus(); next.scrollIntoView({block: 'nearest'}); flyToStep(next); }
  });
  try {
    ws.view = d.deep_zoom ? await deepZoom(stage, slide, onBox) : flatView(stage, slide, onBox);
  } catch (err) {
    stage.replaceChildren();
    ws.view = flatView(stage, slide, onBox);
    stage.append(h('p', {class: 'err small'}, `deep zoom unavailable: ${err.message}`));
  }
  stage.dataset.mode = ws.view.kind;
  renderHead();
  renderTimeline();
  if (session) attach(session.id);
  window.__studio = {ws: () => ws};  // for tests and the curious
}

function leave() {
  if (ws) {
    if (ws.es) ws.es.close();
    if (ws.view) ws.view.destroy();
  }
  ws = null;
}

// ------------------------------------------------------------------------------------------
// Router: #/ (slides), #/slide/<key> (a new conversation), #/session/<id> (a conversation)

let current = '';
async function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const m = hash.match(/^\/(slide|session)\/([^/?]+)/);
  const key = m ? `${m[1]}:${m[2]}` : 'home';
  if (key === current) return;
  current = key;
  leave();
  main.setAttribute('aria-busy', 'true');
  try {
    if (!m) await renderHome();
    else if (m[1] === 'slide') await renderWorkspace(decodeURIComponent(m[2]), null);
    else await renderWorkspace(null, decodeURIComponent(m[2]));
    const q = document.getElementById('question');
    (q || main).focus({preventScroll: true});
  } catch (err) {
    main.replaceChildren(h('div', {class: 'notice notice-error', role: 'alert'},
      h('strong', {}, 'Could not load this page: '), err.message, ' ', h('a', {href: '#/'}, 'Back to the slides')));
  } finally {
    main.removeAttribute('aria-busy');
  }
}

window.addEventListener('hashchange', route);
route();
