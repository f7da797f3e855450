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
  }

  function reset(sv) {
    const inner = sv.querySelector('.sv-inner');
    if (!inner) return;
    inner.style.transform = '';
    inner.style.setProperty('--k', '1');
    sv.classList.remove('sv-zoomed');
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

  global.SlidescoutStatic = {fly, reset, highlight, flyTo, unionBox};
})(window);
