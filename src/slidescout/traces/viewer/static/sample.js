// The sample page: slide viewer (deep zoom, or static fallback) beside the step timeline.
import {h, s, getJSON, fmtCost, fmtInt, fmtSecs, fmtBox, fmtArgs, verdictBadge, statusBadge, announce} from './util.js';
import {scaleAndCursor, heatLegends} from './hud.js';
import {loadOSD} from './osd.js';

const POLL_MS = 3000;
let page = null;  // {id, data, view, selected, timer}

const GAP = 0.04;  // between the images of an image set, in viewport units (image width = 1)

async function deepZoomView(container, data, onRegion) {
  const OSD = await loadOSD();
  const viewer = OSD({
    element: container,
    prefixUrl: 'vendor/openseadragon/images/',
    drawer: 'canvas',
    showNavigator: true,
    navigatorPosition: 'BOTTOM_RIGHT',
    navigatorSizeRatio: 0.16,
    showRotationControl: false,
    showFullPageControl: false,
    gestureSettingsMouse: {clickToZoom: false, dblClickToZoom: true},
    gestureSettingsTouch: {clickToZoom: false},
    maxZoomPixelRatio: 2,
    minZoomImageRatio: 0.6,
    visibilityRatio: 0.2,
    animationTime: 0.8,
    springStiffness: 7,
    immediateRender: false,
    preserveImageSizeOnResize: true,
  });
  const items = await Promise.all(data.images.map((img, i) => new Promise((resolve, reject) => {
    viewer.addTiledImage({
      tileSource: img.dzi, x: i * (1 + GAP), y: 0, width: 1,
      success: e => resolve(e.item),
      error: e => reject(new Error(`could not open ${img.name}: ${e.message || 'tile source failed'}`)),
    });
  })));
  viewer.viewport.goHome(true);
  let overlays = [];
  let regionEls = new Map();

  function rect(r) {
    const item = items[r.image] || items[0];
    return item.imageToViewportRectangle(r.box[0], r.box[1], r.box[2], r.box[3]);
  }

  function draw(d) {
    for (const el of overlays) viewer.removeOverlay(el);
    overlays = [];
    regionEls = new Map();
    const add = (el, r) => { viewer.addOverlay({element: el, location: rect(r)}); overlays.push(el); };
    for (const t of d.truth_regions) {
      const img = d.images[t.image] || d.images[0];
      add(h('div', {class: 'ov ov-truth' + tagPlacement(t.box, img), title: `ground truth: ${t.label}`}, h('span', {class: 'ov-tag'}, t.label)), t);
    }
    for (const r of d.overlays.filter(r => r.url)) {
      add(h('img', {class: 'ov ov-heat', src: r.url, alt: '', title: r.label || 'heatmap'}), r);
    }
    if (items.length > 1) {
      items.forEach((item, i) => {
        const b = item.getBounds();
        const el = h('div', {class: 'ov-imglabel'}, d.images[i].name);
        viewer.addOverlay({element: el, location: new OSD.Point(b.x, b.y), placement: OSD.Placement.BOTTOM_LEFT});
        overlays.push(el);
      });
    }
    // large boxes first so that small ones sit on top and stay clickable
    const boxes = d.regions.filter(r => !r.dup_of).sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
    for (const r of boxes) {
      const ns = [r.n, ...r.also];
      const el = h('div', {class: 'ov ov-region', title: `region ${ns.join(', ')}: ${fmtBox(r.box)}`, dataset: {n: r.n}},
        h('span', {class: 'ov-num'}, ns.join(' · ')));
      add(el, r);
      regionEls.set(r.n, el);
      new OSD.MouseTracker({element: el, clickHandler: () => onRegion(r)});
    }
    // the path the model took: centres of its regions joined in step order
    const pts = d.regions.map(r => {
      const rc = rect(r);
      return [rc.x + rc.width / 2, rc.y + rc.height / 2];
    });
    if (pts.length > 1) {
      const home = viewer.world.getHomeBounds();
      const svg = s('svg', {class: 'ov-path', viewBox: `${home.x} ${home.y} ${home.width} ${home.height}`, preserveAspectRatio: 'none'},
        s('polyline', {points: pts.map(p => p.join(',')).join(' '), 'vector-effect': 'non-scaling-stroke'}));
      viewer.addOverlay({element: svg, location: new OSD.Rect(home.x, home.y, home.width, home.height)});
      overlays.push(svg);
    }
  }

  function highlight(ns) {
    const set = new Set(ns.map(n => drawnAs(n)));
    container.classList.toggle('has-sel', set.size > 0);
    for (const [n, el] of regionEls) el.classList.toggle('sel', set.has(n));
  }

  function fly(ns) {
    const rs = page.data.regions.filter(r => ns.includes(r.n));
    if (!rs.length) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const r of rs) {
      const rc = rect(r);
      x0 = Math.min(x0, rc.x); y0 = Math.min(y0, rc.y);
      x1 = Math.max(x1, rc.x + rc.width); y1 = Math.max(y1, rc.y + rc.height);
    }
    const w = x1 - x0, hh = y1 - y0, pad = 0.35;
    viewer.viewport.fitBounds(new OSD.Rect(x0 - w * pad, y0 - hh * pad, w * (1 + 2 * pad), hh * (1 + 2 * pad)));
  }

  draw(data);
  scaleAndCursor(viewer, items, data, container);
  return {
    kind: 'deepzoom', viewer, draw, highlight, fly,
    home: () => viewer.viewport.goHome(),
    destroy: () => viewer.destroy(),
  };
}

/** Where a truth box's label goes so that it stays on the image: right-aligned in the right
 * half, above the box near the bottom edge. */
function tagPlacement(box, img) {
  const w = img && img.width, hgt = img && img.height;
  let cls = '';
  if (w && box[0] + box[2] / 2 > w / 2) cls += ' tag-end';
  if (hgt && box[1] + box[3] > hgt * 0.92) cls += ' tag-top';
  return cls;
}

/** The region number a box is drawn under (a revisited box is drawn once, as its first visit). */
function drawnAs(n) {
  const r = page && page.data.regions[n - 1];
  return r && r.dup_of ? r.dup_of : n;
}

// ------------------------------------------------------------------------------------------
// Static fallback: the thumbnail (or the overview the model saw) with SVG boxes

function staticFigure(img, d) {
  const box = img.thumb_box || (img.overview && img.overview.box) || [0, 0, img.width || 1, img.height || 1];
  const src = img.thumbnail || (img.overview && img.overview.url);
  const [bx, by, bw, bh] = box;
  const fs = Math.max(bw, bh) / 42;
  const views = d.regions.filter(r => r.image === img.index);
  const svg = s('svg', {class: 'sv-svg', viewBox: `${bx} ${by} ${bw} ${bh}`, preserveAspectRatio: 'none',
    style: `--fs:${fs.toFixed(1)}px`, role: 'img', 'aria-label': `${views.length} viewed regions`});
  const heat = s('g', {class: 'sv-heat'});
  for (const r of d.overlays.filter(r => r.image === img.index && r.url)) {
    heat.append(s('image', {href: r.url, x: r.box[0], y: r.box[1], width: r.box[2], height: r.box[3], preserveAspectRatio: 'none'}));
  }
  svg.append(heat);
  for (const t of d.truth_regions.filter(t => t.image === img.index)) {
    const at = window.SlidescoutStatic.labelPlace(t.box, box, fs, t.label);
    svg.append(s('g', {class: 'sv-truth'},
      s('rect', {x: t.box[0], y: t.box[1], width: t.box[2], height: t.box[3], 'vector-effect': 'non-scaling-stroke'}),
      s('text', {x: at.x, y: at.y, dy: at.dy, 'text-anchor': at.anchor, text: t.label})));
  }
  if (views.length > 1) {
    svg.append(s('polyline', {class: 'sv-path', 'vector-effect': 'non-scaling-stroke',
      points: views.map(r => `${r.box[0] + r.box[2] / 2},${r.box[1] + r.box[3] / 2}`).join(' ')}));
  }
  for (const r of views.filter(r => !r.dup_of).sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3])) {
    const ns = [r.n, ...r.also];
    svg.append(s('g', {class: 'sv-region', 'data-n': r.n, 'data-ns': ns.join(' '), 'data-entry': r.entry, 'data-box': r.box.join(',')},
      s('title', {text: `region ${ns.join(', ')}: ${fmtBox(r.box)}`}),
      s('rect', {x: r.box[0], y: r.box[1], width: r.box[2], height: r.box[3], 'vector-effect': 'non-scaling-stroke'}),
      s('text', {x: r.box[0], y: r.box[1], dx: '0.2em', dy: '1em', text: ns.join(' · ')})));
  }
  const inner = h('div', {class: 'sv-inner'},
    src ? h('img', {class: 'sv-img', src, alt: `${img.name}: thumbnail`}) : h('div', {class: 'sv-missing'}, 'slide file not available'),
    svg);
  return h('figure', {class: 'sv-fig'},
    h('div', {class: 'sv', style: `aspect-ratio:${bw}/${bh}`, dataset: {box: box.join(' '), mpp: d.slide.kind === 'slide' && d.slide.mpp ? d.slide.mpp : null}}, inner),
    d.images.length > 1 ? h('figcaption', {}, img.name) : null);
}

function staticView(container, data, onRegion) {
  const SV = window.SlidescoutStatic;
  function draw(d) {
    container.replaceChildren(h('div', {class: `sv-row n${d.images.length}`}, d.images.map(img => staticFigure(img, d))));
    SV.initScale(container);
  }
  container.addEventListener('click', e => {
    const g = e.target.closest('.sv-region');
    if (!g) return;
    const r = page.data.regions.find(r => String(r.n) === g.dataset.n);
    if (r) onRegion(r);
  });
  draw(data);
  return {
    kind: 'static', draw,
    highlight: ns => SV.highlight(container, ns),
    fly: ns => SV.flyTo(container, ns),
    home: () => SV.flyTo(container, []),
    destroy: () => {},
  };
}

// ------------------------------------------------------------------------------------------
// Timeline

function figureFor(img, label) {
  const cap = [img.region ? `#${img.region}` : null, label || img.label, img.box ? fmtBox(img.box) : null,
    img.mpp ? `${img.mpp.toFixed(2)} µm/px` : null, `${img.width}×${img.height} px`].filter(Boolean).join(' · ');
  const pic = img.url
    ? h('button', {type: 'button', class: 'thumb-btn', 'aria-label': `Enlarge image: ${cap}`, dataset: {src: img.url, cap}},
      h('img', {src: img.url, alt: `Image the model saw: ${cap}`, loading: 'lazy', width: img.width, height: img.height}))
    : h('div', {class: 'thumb-missing'}, 'image not stored');
  return h('figure', {class: 'seen' + (img.overlay ? ' seen-heat' : '')}, pic, h('figcaption', {}, cap));
}

function rethinkEl(rt) {
  if (!rt || !(rt.hypothesis || rt.differential.length || rt.confidence !== null)) return null;
  const conf = rt.confidence;
  return h('div', {class: 'rethink'},
    h('div', {class: 'rethink-head'}, h('span', {class: 'k'}, 'Hypothesis'),
      conf !== null && conf !== undefined ? h('span', {class: 'conf'},
        h('meter', {min: 0, max: 1, value: conf, 'aria-label': 'confidence'}), ` ${(conf * 100).toFixed(0)}%`) : null),
    rt.hypothesis ? h('p', {}, rt.hypothesis) : null,
    rt.differential && rt.differential.length ? h('p', {class: 'diff'}, h('span', {class: 'k'}, 'Differential '),
      rt.differential.map(x => h('span', {class: 'chip'}, x))) : null,
    rt.needed_evidence ? h('p', {class: 'muted'}, h('span', {class: 'k'}, 'Needs '), rt.needed_evidence) : null);
}

function clampText(text, cls) {
  const long = text.length > 600 || text.split('\n').length > 8;
  const el = h('div', {class: cls + (long ? ' clamp' : '')}, text);
  if (!long) return el;
  const btn = h('button', {type: 'button', class: 'link more', 'aria-expanded': 'false'}, 'Show more');
  btn.addEventListener('click', e => {
    e.stopPropagation();
    const open = el.classList.toggle('clamp');
    btn.textContent = open ? 'Show more' : 'Show less';
    btn.setAttribute('aria-expanded', String(!open));
  });
  return h('div', {}, el, btn);
}

function stepEl(e, d) {
  const tools = e.calls.map(c => c.name);
  const title = e.answer ? 'Answer' : tools.length ? tools.join(', ') : e.step === null ? 'Setup' : 'Thought';
  const u = e.usage;
  const metrics = [
    u ? h('span', {title: 'input → output tokens'}, `${fmtInt(u.input_tokens)} → ${fmtInt(u.output_tokens)} tok`) : null,
    u ? h('span', {title: 'cost'}, fmtCost(u.cost_usd)) : null,
    e.latency_s !== null ? h('span', {title: 'model latency'}, fmtSecs(e.latency_s)) : null,
  ].filter(Boolean);
  const li = h('li', {class: 'step' + (e.errors.length ? ' has-error' : '') + (e.answer ? ' is-answer' : ''),
    tabindex: 0, dataset: {entry: e.index}, 'aria-label': `${e.title}: ${title}${e.regions.length ? ', regions ' + e.regions.join(', ') : ''}`},
    h('div', {class: 'step-head'},
      h('span', {class: 'step-no', 'aria-hidden': 'true'}, e.step === null ? '·' : String(e.step + 1)),
      h('span', {class: 'step-title'}, title),
      e.regions.length ? h('span', {class: 'step-regions'}, e.regions.map(n => h('span', {class: 'rnum'}, String(n)))) : null,
      h('span', {class: 'step-metrics'}, metrics)),
  );
  const body = h('div', {class: 'step-body'});
  if (e.shown.length) body.append(h('div', {class: 'seen-row'}, e.shown.map(img => figureFor(img, img.purpose))));
  if (e.reasoning.length) {
    body.append(h('details', {class: 'reasoning'}, h('summary', {}, 'Reasoning'), h('div', {class: 'pre'}, e.reasoning.join('\n\n'))));
  }
  if (e.thought && !(e.answer && e.answer.text.trim() === e.thought.trim())) body.append(clampText(e.thought, 'thought pre'));
  const rt = rethinkEl(e.rethink);
  if (rt) body.append(rt);
  for (const c of e.calls) {
    const res = c.result;
    const call = h('div', {class: 'call'},
      h('code', {class: 'call-sig'}, h('span', {class: 'fn'}, c.name), '(', c.raw_arguments || fmtArgs(c.arguments), ')'),
      res && res.duration_s ? h('span', {class: 'muted small'}, ' ', fmtSecs(res.duration_s)) : null);
    if (c.parse_error) call.append(h('p', {class: 'err'}, `could not parse arguments: ${c.parse_error}`));
    if (res) {
      if (res.error) call.append(h('p', {class: 'err'}, h('strong', {}, 'Error: '), res.error));
      if (res.internal_error) call.append(h('p', {class: 'err small'}, `internal: ${res.internal_error}`));
      if (res.text) call.append(h('details', {class: 'result'}, h('summary', {}, 'Tool result'), h('div', {class: 'pre'}, res.text)));
      if (res.images.length) call.append(h('div', {class: 'seen-row'}, res.images.map(img => figureFor(img))));
    } else if (page && page.data.status === 'running') {
      call.append(h('p', {class: 'muted small'}, 'running…'));
    }
    body.append(call);
  }
  for (const err of e.errors) body.append(h('p', {class: 'err'}, h('strong', {}, err.fatal ? 'Fatal error: ' : 'Error: '), err.message));
  if (e.retries.length) body.append(h('p', {class: 'muted small'}, `${e.retries.length} retr${e.retries.length > 1 ? 'ies' : 'y'}: `, e.retries.map(r => r.reason).join(', ')));
  for (const n of e.notes) body.append(h('details', {class: 'note'}, h('summary', {}, n.split('\n')[0].slice(0, 120)), n.includes('\n') ? h('div', {class: 'pre small'}, n) : null));
  if (e.answer) {
    body.append(h('div', {class: 'answer'}, h('span', {class: 'k'}, e.answer.forced ? 'Final answer (forced)' : 'Final answer'),
      h('div', {class: 'pre'}, e.answer.text)));
  }
  li.append(body);
  return li;
}

function timeline(d) {
  const ol = h('ol', {class: 'steps', 'aria-label': 'Steps of the trace'});
  const frag = document.createDocumentFragment();
  for (const e of d.steps) frag.append(stepEl(e, d));
  ol.append(frag);
  if (!d.steps.length) ol.append(h('li', {class: 'empty'}, 'No events yet.'));
  if (d.status === 'running') ol.append(h('li', {class: 'waiting', 'aria-live': 'polite'}, 'Running: new steps appear here as the trace is written.'));
  return ol;
}

// ------------------------------------------------------------------------------------------
// Page

function header(d) {
  const row = d.row || {};
  const u = d.usage;
  const meta = [
    d.task ? ['Task', d.task] : null, ['Model', d.model], ['Preset', d.preset], ['Steps', String(d.n_steps)],
    ['Tokens', `${fmtInt(u.input_tokens)} in · ${fmtInt(u.output_tokens)} out`], ['Cost', fmtCost(u.cost_usd)],
    d.slide.kind === 'slide' && d.slide.width ? ['Slide', `${d.slide.width.toLocaleString('en-US')} × ${d.slide.height.toLocaleString('en-US')} px` + (d.slide.mpp ? ` · ${d.slide.mpp.toFixed(3)} µm/px` : '')] : null,
    d.slide.kind === 'imageset' ? ['Images', String(d.images.length)] : null,
  ].filter(Boolean);
  const answer = row.answer ?? (d.answer ? d.answer.split('\n')[0] : null);
  const truth = row.truth ?? d.truth;
  return h('header', {class: 'sample-head'},
    h('div', {class: 'title-row'},
      h('h1', {}, d.sample_id),
      statusBadge(row.status || d.status), verdictBadge(row.correct ?? null),
      h('dl', {class: 'meta'}, meta.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))))),
    h('div', {class: 'qa'},
      h('div', {class: 'qa-q'}, h('span', {class: 'k'}, 'Question'), clampText(d.question, 'q-text')),
      h('div', {class: 'qa-a'},
        h('div', {}, h('span', {class: 'k'}, 'Answer'), h('span', {class: 'v'}, answer ?? '–')),
        h('div', {}, h('span', {class: 'k'}, 'Truth'), h('span', {class: 'v'}, truth ?? '–')))));
}

function toolbar(d, mode) {
  const nView = d.regions.length;
  const nHeat = d.overlays.filter(r => r.url).length;
  const toggle = (id, cls, label, checked, disabled) => h('label', {class: 'toggle' + (disabled ? ' disabled' : '')},
    h('input', {type: 'checkbox', id, checked, disabled, dataset: {layer: cls}}), h('span', {class: `swatch sw-${cls}`, 'aria-hidden': 'true'}), label);
  return h('div', {class: 'viewer-bar', role: 'toolbar', 'aria-label': 'Layers'},
    toggle('layer-regions', 'regions', `Viewed regions (${nView})`, true, !nView),
    toggle('layer-truth', 'truth', `Ground truth (${d.truth_regions.length})`, true, !d.truth_regions.length),
    toggle('layer-heat', 'heat', `Heatmaps (${nHeat})`, false, !nHeat),
    h('span', {class: 'spacer'}),
    mode === 'static' ? h('span', {class: 'muted small', title: 'install OpenSeadragon (slidescout view --setup) for deep zoom'}, 'static view') : null,
    h('button', {type: 'button', class: 'btn btn-small', id: 'home'}, homeLabel(d)));
}

/** The button that shows everything again: the slide, or the images of an image set. */
export function homeLabel(d) {
  if (d.slide.kind !== 'imageset') return 'Whole slide';
  return d.images.length > 1 ? 'All images' : 'Whole image';
}

function selectEntry(i, opts = {}) {
  const d = page.data;
  const e = d.steps[i];
  if (!e) return;
  page.selected = i;
  const list = document.querySelector('ol.steps');
  list.querySelectorAll('li.step').forEach(li => {
    const on = Number(li.dataset.entry) === i;
    li.classList.toggle('selected', on);
    if (on) li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
  });
  const li = list.querySelector(`li.step[data-entry="${i}"]`);
  if (opts.scroll && li) li.scrollIntoView({block: 'nearest', behavior: opts.instant ? 'auto' : 'smooth'});
  if (opts.focus && li) li.focus({preventScroll: !opts.scroll});
  const ns = e.regions;
  if (page.view) {
    page.view.highlight(opts.region ? [opts.region] : ns);
    if (opts.fly !== false) { if (ns.length) page.view.fly(opts.region ? [opts.region] : ns); }
  }
  history.replaceState(null, '', `#/s/${encodeURIComponent(page.id)}/${i}`);
  announce(`${e.title} selected${ns.length ? ', regions ' + ns.join(', ') : ''}`);
}

function wireTimeline(ol) {
  ol.addEventListener('click', ev => {
    const t = ev.target;
    const li = t.closest('li.step');
    if (t.closest('.thumb-btn')) {
      if (li) selectEntry(Number(li.dataset.entry), {fly: true});
      openImage(t.closest('.thumb-btn'));
      return;
    }
    if (t.closest('summary, a, button, details[open] .pre')) return;
    if (li && !window.getSelection().toString()) selectEntry(Number(li.dataset.entry), {fly: true});
  });
  ol.addEventListener('keydown', ev => {
    const li = ev.target.closest('li.step');
    if (!li || ev.target !== li) return;
    const i = Number(li.dataset.entry);
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); selectEntry(i, {fly: true}); }
    else if (ev.key === 'ArrowDown' || ev.key === 'j') { ev.preventDefault(); selectEntry(Math.min(i + 1, page.data.steps.length - 1), {fly: true, focus: true, scroll: true}); }
    else if (ev.key === 'ArrowUp' || ev.key === 'k') { ev.preventDefault(); selectEntry(Math.max(i - 1, 0), {fly: true, focus: true, scroll: true}); }
  });
}

function openImage(btn) {
  const dlg = document.getElementById('image-dialog');
  dlg.querySelector('img').src = btn.dataset.src;
  dlg.querySelector('img').alt = btn.dataset.cap;
  dlg.querySelector('figcaption').textContent = btn.dataset.cap;
  dlg.showModal();
}

function imageDialog() {
  const dlg = h('dialog', {id: 'image-dialog', class: 'image-dialog', 'aria-label': 'Image the model saw'},
    h('form', {method: 'dialog'}, h('button', {class: 'btn close', 'aria-label': 'Close'}, 'Close')),
    h('figure', {}, h('img', {alt: ''}), h('figcaption')));
  dlg.addEventListener('click', e => { if (e.target === dlg) dlg.close(); });
  return dlg;
}

async function poll() {
  clearTimeout(page.timer);
  if (!page || page.data.status !== 'running') return;
  page.timer = setTimeout(async () => {
    const id = page.id;
    try {
      const d = await getJSON(`api/samples/${encodeURIComponent(id)}`);
      if (!page || page.id !== id) return;
      if (d.steps.length !== page.data.steps.length || d.status !== page.data.status
          || JSON.stringify(d.steps.at(-1)) !== JSON.stringify(page.data.steps.at(-1))) {
        page.data = d;
        document.querySelector('.sample-head').replaceWith(header(d));
        const ol = timeline(d);
        document.querySelector('ol.steps').replaceWith(ol);
        wireTimeline(ol);
        if (page.view) page.view.draw(d);
        selectEntry(Math.min(page.selected ?? d.steps.length - 1, d.steps.length - 1), {fly: false});
      }
    } catch (_) { /* transient: try again */ }
    poll();
  }, POLL_MS);
}

export async function renderSample(main, id, entry, setCrumbs) {
  leaveSample();
  const d = await getJSON(`api/samples/${encodeURIComponent(id)}`);
  page = {id, data: d, view: null, selected: null, timer: null};
  setCrumbs([...(d.runs_home ? [['All runs', d.runs_home]] : []), [d.run_id || 'run', '#/'], [d.sample_id, null]]);
  document.title = `${d.sample_id} · slidescout`;
  const deep = d.deep_zoom && d.images.every(img => img.dzi);
  const stage = h('div', {id: 'slide-view', class: 'slide-view', role: 'region', 'aria-label': 'Slide with viewed regions'});
  const ol = timeline(d);
  const root = h('div', {class: 'sample-page'},
    header(d),
    h('div', {class: 'workspace'},
      h('section', {class: 'viewer-pane', 'aria-label': 'Slide'}, toolbar(d, deep ? 'deepzoom' : 'static'), stage,
        h('p', {class: 'legend small muted'}, 'Numbered boxes: regions the model viewed, in order. Click a box to select its step; click a step to fly to it.'),
        heatLegends(d)),
      h('section', {class: 'timeline-pane', 'aria-label': 'Timeline'},
        h('h2', {class: 'pane-title'}, 'Timeline ', h('span', {class: 'muted small'}, `${d.steps.length} ${d.steps.length === 1 ? 'entry' : 'entries'} · ↑/↓ to move`)), ol)),
    imageDialog());
  main.replaceChildren(root);
  wireTimeline(ol);
  const onRegion = r => {
    // a box visited several times: each click selects the next visit
    const first = r.dup_of ? page.data.regions[r.dup_of - 1] : r;
    const visits = [first.n, ...first.also].map(n => page.data.regions[n - 1]);
    const cur = visits.findIndex(v => v.entry === page.selected);
    const next = visits[(cur + 1) % visits.length];
    selectEntry(next.entry, {fly: false, scroll: true, region: next.n});
  };
  try {
    page.view = deep ? await deepZoomView(stage, d, onRegion) : staticView(stage, d, onRegion);
  } catch (err) {
    stage.replaceChildren();
    page.view = staticView(stage, d, onRegion);
    root.querySelector('.viewer-bar').append(h('span', {class: 'err small'}, `deep zoom unavailable: ${err.message}`));
  }
  stage.dataset.mode = page.view.kind;
  root.querySelector('#home').addEventListener('click', () => page.view.home());
  root.querySelectorAll('.viewer-bar input[type=checkbox]').forEach(cb => {
    const apply = () => stage.classList.toggle('hide-' + cb.dataset.layer, !cb.checked);
    cb.addEventListener('change', apply);
    apply();
  });
  if (entry !== null && entry !== undefined && d.steps[entry]) {
    selectEntry(entry, {fly: true, scroll: true, instant: true});
  }
  window.__slidescout = {page: () => page};  // for tests and the curious
  poll();
}

export function leaveSample() {
  if (page) {
    clearTimeout(page.timer);
    if (page.view) page.view.destroy();
  }
  page = null;
}
