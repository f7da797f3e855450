// The static slide view (a thumbnail with the regions drawn as SVG): used by the viewer when
// deep zoom is unavailable, and inlined into the self-contained HTML report. No dependencies.
//
// Markup: <div class="sv" data-box="x y w h"><div class="sv-inner"><img class="sv-img">
//   <svg class="sv-svg" viewBox="x y w h">…<g class="sv-region" data-n data-entry>…</g></svg></div></div>
(function (global) {
  'use strict';

  function shownBox(sv) {
    return sv.dataset.box.split(/[ ,]+/).map(Number);
  }

  /** Zoom the view so that level-0 box [x, y, w, h] fills about 70% of it (CSS transform). */
  function fly(sv, box) {
    const inner = sv.querySelector('.sv-inner');
    if (!inner || !box) return;
    const [bx, by, bw, bh] = shownBox(sv);
    const fw = box[2] / bw, fh = box[3] / bh;
    const k = Math.max(1, Math.min(0.7 / Math.max(fw, fh), 24));
    const cx = (box[0] + box[2] / 2 - bx) / bw, cy = (box[1] + box[3] / 2 - by) / bh;
    // keep the zoomed image covering the frame where possible
    const tx = Math.min(0, Math.max(1 - k, 0.5 - cx * k));
    const ty = Math.min(0, Math.max(1 - k, 0.5 - cy * k));
    inner.style.transform = `translate(${(tx * 100).toFixed(3)}%, ${(ty * 100).toFixed(3)}%) scale(${k.toFixed(4)})`;
    inner.style.setProperty('--k', k.toFixed(4));
    sv.classList.toggle('sv-zoomed', k > 1.001);
    updateScale(sv);
  }

  function reset(sv) {
    const inner = sv.querySelector('.sv-inner');
    if (!inner) return;
    inner.style.transform = '';
    inner.style.setProperty('--k', '1');
    sv.classList.remove('sv-zoomed');
    updateScale(sv);
  }

  /** Mark regions numbered in `ns` (and their step) as selected in every static view under root. */
  function highlight(root, ns) {
    const set = new Set((ns || []).map(String));
    root.querySelectorAll('.sv-region').forEach(g => {
      g.classList.toggle('sel', (g.dataset.ns || g.dataset.n).split(' ').some(n => set.has(n)));
    });
    root.querySelectorAll('.sv').forEach(sv => sv.classList.toggle('has-sel', set.size > 0));
  }

  /** Union of the boxes of regions `ns` inside one .sv, or null. */
  function unionBox(sv, ns) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    const want = new Set(ns.map(String));
    for (const g of sv.querySelectorAll('.sv-region')) {
      if (!(g.dataset.ns || g.dataset.n).split(' ').some(n => want.has(n))) continue;
      const b = g.dataset.box.split(',').map(Number);
      x0 = Math.min(x0, b[0]); y0 = Math.min(y0, b[1]);
      x1 = Math.max(x1, b[0] + b[2]); y1 = Math.max(y1, b[1] + b[3]);
    }
    return x0 === Infinity ? null : [x0, y0, x1 - x0, y1 - y0];
  }

  /** Fly each view under root to its selected regions (or back to the whole image). */
  function flyTo(root, ns) {
    root.querySelectorAll('.sv').forEach(sv => {
      const box = ns && ns.length ? unionBox(sv, ns) : null;
      if (box) fly(sv, box); else reset(sv);
    });
  }

  /** Where a truth label goes so that it stays inside the shown box [bx, by, bw, bh]: under the
   * box, right-aligned when it would run past the right edge, above it near the bottom edge. */
  function labelPlace(b, shown, fs, label) {
    const [bx, by, bw, bh] = shown;
    const width = 0.62 * fs * String(label).length;
    let x = b[0], anchor = 'start';
    if (b[0] + width > bx + bw) { x = Math.min(b[0] + b[2], bx + bw); anchor = 'end'; }
    if (anchor === 'end' && x - width < bx) { x = bx; anchor = 'start'; }
    let y = b[1] + b[3], dy = '1em';
    if (y + 1.25 * fs > by + bh) {
      if (b[1] - 1.25 * fs >= by) { y = b[1]; dy = '-0.3em'; } else { y = b[1] + b[3]; dy = '-0.3em'; }
    }
    return {x, y, dy, anchor};
  }

  const NICE = [1, 2, 5];
  function niceLength(umPerPx, maxPx) {
    const limit = umPerPx * maxPx;
    let best = null;
    for (let k = Math.floor(Math.log10(limit)) - 1; k <= Math.floor(Math.log10(limit)); k++) {
      for (const m of NICE) { const v = m * Math.pow(10, k); if (v <= limit) best = v; }
    }
    return best;
  }

  /** A scale bar on each .sv[data-mpp] under root (1, 2 or 5 × 10^n µm), kept right on zoom and resize. */
  function updateScale(sv) {
    const bar = sv.querySelector('.sv-scale');
    const mpp = Number(sv.dataset.mpp);
    if (!bar || !(mpp > 0) || !sv.clientWidth) return;
    const inner = sv.querySelector('.sv-inner');
    const k = inner ? Number(inner.style.getPropertyValue('--k') || 1) || 1 : 1;
    const umPerPx = mpp * shownBox(sv)[2] / (sv.clientWidth * k);
    const len = niceLength(umPerPx, 120);
    if (!len) return;
    bar.querySelector('.scalebar-bar').style.width = `${(len / umPerPx).toFixed(1)}px`;
    bar.querySelector('.scalebar-label').textContent = len >= 1000 ? `${len / 1000} mm` : `${len} µm`;
    bar.dataset.umPerPx = String(umPerPx);
  }

  function initScale(root) {
    root.querySelectorAll('.sv[data-mpp]').forEach(sv => {
      if (!sv.querySelector('.sv-scale')) {
        const bar = document.createElement('div');
        bar.className = 'sv-scale';
        bar.setAttribute('aria-label', 'Scale bar');
        bar.innerHTML = '<span class="scalebar-bar"></span><span class="scalebar-label"></span>';
        sv.append(bar);
      }
      updateScale(sv);
      if (window.ResizeObserver && !sv.dataset.scaleWatched) {
        sv.dataset.scaleWatched = '1';
        new ResizeObserver(() => updateScale(sv)).observe(sv);
      }
    });
  }

  global.SlidescoutStatic = {fly, reset, highlight, flyTo, unionBox, labelPlace, initScale, updateScale};
})(window);
