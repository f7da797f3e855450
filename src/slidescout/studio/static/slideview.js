// The studio's slide: deep zoom (OpenSeadragon from npm) or a flat thumbnail, with the agent's
// numbered boxes, the region hints, and drawing a hint by dragging on the slide.
import {h, fmtBox} from '../static/util.js';
import {scaleAndCursor} from '../static/hud.js';
import {loadOSD} from '../static/osd.js';

export function boxEl(b) {
  const cls = b.kind === 'hint' ? 'ov ov-hint' : `ov ov-region${b.pending ? ' pending' : ''}${b.latest ? ' latest' : ''}`;
  const label = b.kind === 'hint' ? b.label : b.ns.join(' · ');
  const title = b.kind === 'hint' ? `region hint: ${fmtBox(b.box)}` : `region ${b.ns.join(', ')}${b.pending ? ' (being read)' : ''}: ${fmtBox(b.box)}`;
  return h('div', {class: cls, title, 'aria-label': title, dataset: b.n ? {n: b.n} : {}},
    h('span', {class: b.kind === 'hint' ? 'ov-tag' : 'ov-num'}, label));
}

export async function deepZoom(container, slide, onBox) {
  const OSD = await loadOSD();
  const viewer = OSD({
    element: container, prefixUrl: 'vendor/openseadragon/images/', drawer: 'canvas',
    showNavigator: true, navigatorPosition: 'BOTTOM_RIGHT', navigatorSizeRatio: 0.16,
    showRotationControl: false, showFullPageControl: false,
    gestureSettingsMouse: {clickToZoom: false, dblClickToZoom: true}, gestureSettingsTouch: {clickToZoom: false},
    maxZoomPixelRatio: 2, minZoomImageRatio: 0.6, visibilityRatio: 0.2, animationTime: 0.7,
    preserveImageSizeOnResize: true,
  });
  const item = await new Promise((resolve, reject) => viewer.addTiledImage({
    tileSource: slide.dzi, x: 0, y: 0, width: 1,
    success: e => resolve(e.item),
    error: e => reject(new Error(`could not open ${slide.name}: ${e.message || 'tile source failed'}`)),
  }));
  viewer.viewport.goHome(true);
  let overlays = [];
  const rect = b => item.imageToViewportRectangle(b[0], b[1], b[2], b[3]);
  scaleAndCursor(viewer, [item], {slide: {kind: 'slide', mpp: slide.mpp}, images: [{name: slide.name}]}, container);

  // drawing a region hint: press, drag, release (the drag draws instead of panning)
  let drawing = null, onDrawn = null;
  viewer.addHandler('canvas-press', e => {
    if (!onDrawn) return;
    e.preventDefaultAction = true;
    const a = item.viewerElementToImageCoordinates(e.position);
    drawing = {a, box: null, el: boxEl({kind: 'hint', box: [0, 0, 1, 1], label: 'hint'})};
    viewer.addOverlay({element: drawing.el, location: rect([a.x, a.y, 1, 1])});
  });
  viewer.addHandler('canvas-drag', e => {
    if (!drawing) return;
    e.preventDefaultAction = true;
    drawing.box = normBox(drawing.a, item.viewerElementToImageCoordinates(e.position), slide);
    viewer.updateOverlay(drawing.el, rect(drawing.box));
  });
  const finish = e => {
    if (!drawing) return;
    if (e) e.preventDefaultAction = true;
    const {el, box} = drawing;
    drawing = null;
    viewer.removeOverlay(el);
    const done = onDrawn;
    onDrawn = null;
    if (done) done(box && box[2] > 2 && box[3] > 2 ? box : null);
  };
  viewer.addHandler('canvas-release', finish);
  viewer.addHandler('canvas-click', e => { if (onDrawn || drawing) e.preventDefaultAction = true; });
  return {
    kind: 'deepzoom', viewer,
    draw(boxes) {
      for (const el of overlays) viewer.removeOverlay(el);
      overlays = [];
      // large boxes first so that small ones sit on top and stay clickable
      for (const b of boxes.slice().sort((p, q) => q.box[2] * q.box[3] - p.box[2] * p.box[3])) {
        const el = boxEl(b);
        viewer.addOverlay({element: el, location: rect(b.box)});
        overlays.push(el);
        if (b.n) new OSD.MouseTracker({element: el, clickHandler: () => onBox(b)});
      }
    },
    fly(box) {
      const r = rect(box), pad = 0.6;
      viewer.viewport.fitBounds(new OSD.Rect(r.x - r.width * pad, r.y - r.height * pad, r.width * (1 + 2 * pad), r.height * (1 + 2 * pad)));
    },
    home: () => viewer.viewport.goHome(),
    drawRegion(cb) { onDrawn = cb; },
    cancelDraw() { if (drawing) viewer.removeOverlay(drawing.el); onDrawn = null; drawing = null; },
    destroy: () => viewer.destroy(),
  };
}

function normBox(a, b, slide) {
  const x0 = Math.max(0, Math.min(a.x, b.x)), y0 = Math.max(0, Math.min(a.y, b.y));
  const x1 = Math.min(slide.width, Math.max(a.x, b.x)), y1 = Math.min(slide.height, Math.max(a.y, b.y));
  return [Math.round(x0), Math.round(y0), Math.max(1, Math.round(x1 - x0)), Math.max(1, Math.round(y1 - y0))];
}

export function flatView(container, slide, onBox) {
  const img = h('img', {src: slide.thumbnail, alt: `${slide.name}: thumbnail`});
  const inner = h('div', {class: 'flat-inner'}, img);
  container.append(h('div', {class: 'flat'}, inner));
  let onDrawn = null, drawing = null;
  const pos = b => `left:${100 * b[0] / slide.width}%;top:${100 * b[1] / slide.height}%;width:${100 * b[2] / slide.width}%;height:${100 * b[3] / slide.height}%`;
  const at = e => { const r = img.getBoundingClientRect(); return {x: (e.clientX - r.left) / r.width * slide.width, y: (e.clientY - r.top) / r.height * slide.height}; };
  inner.addEventListener('pointerdown', e => { if (onDrawn) { e.preventDefault(); drawing = {a: at(e)}; } });
  inner.addEventListener('pointerup', e => {
    if (!drawing) return;
    const box = normBox(drawing.a, at(e), slide);
    drawing = null;
    const done = onDrawn; onDrawn = null;
    if (done) done(box[2] > 2 && box[3] > 2 ? box : null);
  });
  return {
    kind: 'flat',
    draw(boxes) {
      inner.querySelectorAll('.ov').forEach(el => el.remove());
      for (const b of boxes) {
        const el = boxEl(b);
        el.setAttribute('style', pos(b.box));
        if (b.n) el.addEventListener('click', () => onBox(b));
        inner.append(el);
      }
    },
    fly() {}, home() {},
    drawRegion(cb) { onDrawn = cb; },
    cancelDraw() { onDrawn = null; },
    destroy() {},
  };
}

