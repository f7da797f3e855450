// Around the deep-zoom slide: scale bar, magnification, cursor position (level-0 px and µm), and
// the legends of the heatmaps tools drew.
import {h, fmtMicrons} from './util.js';

// ------------------------------------------------------------------------------------------
// Scale bar, magnification and cursor position (level-0 px and µm), as a microscope viewer shows them

const NICE = [1, 2, 5];

/** The longest 1/2/5 × 10^k length (µm) whose bar is at most maxPx wide. */
export function niceLength(umPerPx, maxPx = 150) {
  const limit = umPerPx * maxPx;
  let best = null;
  for (let k = Math.floor(Math.log10(limit)) - 1; k <= Math.floor(Math.log10(limit)); k++) {
    for (const m of NICE) { const v = m * 10 ** k; if (v <= limit) best = v; }
  }
  return best;
}

export function scaleAndCursor(viewer, items, data, container) {
  const mpp = data.slide && data.slide.kind === 'slide' && data.slide.mpp ? data.slide.mpp : null;
  const bar = h('span', {class: 'scalebar-bar'});
  const label = h('span', {class: 'scalebar-label'});
  const mag = h('span', {class: 'hud-mag', title: 'Equivalent objective magnification on this screen (40× ≈ 0.25 µm per screen pixel)'});
  const pos = h('span', {class: 'hud-pos'});
  const hud = h('div', {class: 'hud', 'aria-label': 'Scale and cursor position'},
    h('div', {class: 'scalebar'}, bar, label), mag, pos);
  container.append(hud);
  const update = () => {
    const zoom = items[0].viewportToImageZoom(viewer.viewport.getZoom(true));  // screen px per level-0 px
    if (!(zoom > 0)) return;
    if (mpp) {
      const umPerPx = mpp / zoom;
      const len = niceLength(umPerPx);
      bar.style.width = `${(len / umPerPx).toFixed(1)}px`;
      label.textContent = len >= 1000 ? `${len / 1000} mm` : `${len} µm`;
      const x = 10 / umPerPx;
      mag.textContent = `${x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2)}× · ${umPerPx < 10 ? umPerPx.toFixed(2) : umPerPx.toFixed(0)} µm/px`;
    } else {
      bar.style.width = '0';
      label.textContent = 'no scale (µm/px unknown)';
      mag.textContent = zoom >= 1 ? `zoom ${zoom.toFixed(1)}:1` : `zoom 1:${(1 / zoom).toFixed(zoom > 0.1 ? 1 : 0)}`;
    }
    hud.dataset.zoom = String(zoom);
  };
  viewer.addHandler('animation', update);
  viewer.addHandler('animation-finish', update);
  viewer.addHandler('resize', update);
  update();
  viewer.element.addEventListener('pointermove', ev => {
    const rc = viewer.container.getBoundingClientRect();
    const vp = viewer.viewport.pointFromPixel(new window.OpenSeadragon.Point(ev.clientX - rc.left, ev.clientY - rc.top), true);
    const i = items.findIndex(it => { const b = it.getBounds(true); return vp.x >= b.x && vp.x <= b.x + b.width && vp.y >= b.y && vp.y <= b.y + b.height; });
    if (i < 0) { pos.textContent = ''; return; }
    const p = items[i].viewportToImageCoordinates(vp);
    const where = items.length > 1 ? `${data.images[i].name}: ` : '';
    pos.textContent = `${where}x ${Math.round(p.x).toLocaleString('en-US')}, y ${Math.round(p.y).toLocaleString('en-US')} px`
      + (mpp ? ` · ${fmtMicrons(p.x * mpp)}, ${fmtMicrons(p.y * mpp)}` : '');
  });
  viewer.element.addEventListener('pointerleave', () => { pos.textContent = ''; });
}

/** Under the slide: what each heatmap's colours mean (from the tool that drew it). */
export function heatLegends(d) {
  const heats = d.overlays.filter(r => r.url);
  if (!heats.length) return null;
  return h('div', {class: 'heat-legends'}, heats.map(r => h('p', {class: 'heat-legend small'},
    h('span', {class: 'k'}, `Layer · step ${r.step === null || r.step === undefined ? '·' : r.step + 1}${r.label ? ' · ' + r.label : ''} `),
    /blue = low/.test(r.legend || '') ? h('span', {class: 'heat-scale', 'aria-hidden': 'true'}, '0 ', h('span', {class: 'heat-bar'}), ' 1') : null,
    ' ', h('span', {class: 'muted'}, r.legend || 'no colour scale recorded by the tool'))));
}

