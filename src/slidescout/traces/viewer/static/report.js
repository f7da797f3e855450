
// Report interactions: click a step to show its regions, click a region to select its step.
(function () {
  'use strict';
  const SV = window.SlidescoutStatic;

  // Images are stored once, in a JSON block, and shared by every <img>/<image> that shows them.
  const store = document.getElementById('report-images');
  const uris = store ? JSON.parse(store.textContent) : {};
  document.querySelectorAll('[data-img]').forEach(el => {
    const uri = uris[el.getAttribute('data-img')];
    if (!uri) return;
    if (el.tagName.toLowerCase() === 'image') el.setAttribute('href', uri); else el.src = uri;
  });

  function select(article, li, fly) {
    article.querySelectorAll('li.step').forEach(x => {
      const on = x === li;
      x.classList.toggle('selected', on);
      if (on) x.setAttribute('aria-current', 'step'); else x.removeAttribute('aria-current');
    });
    const ns = (li.dataset.regions || '').split(' ').filter(Boolean);
    SV.highlight(article, ns);
    if (fly && ns.length) SV.flyTo(article, ns);
  }

  SV.initScale(document);
  document.querySelectorAll('article.report-sample').forEach(article => {
    const view = article.querySelector('.slide-static');
    article.addEventListener('click', e => {
      const t = e.target;
      const region = t.closest('.sv-region');
      if (region) {
        // a box visited several times: each click selects the next visit
        const ns = (region.dataset.ns || region.dataset.n).split(' ');
        const steps = ns.map(n => article.querySelector(`li.step[data-regions~="${n}"]`) || null);
        const cur = steps.findIndex(x => x && x.classList.contains('selected'));
        const k = (cur + 1) % ns.length;
        const li = steps[k] || article.querySelector(`li.step[data-entry="${region.dataset.entry}"]`);
        if (li) {
          select(article, li, false);
          SV.highlight(article, [ns[k]]);
          li.scrollIntoView({block: 'nearest', behavior: 'smooth'});
        }
        return;
      }
      if (t.closest('.home')) { SV.flyTo(article, []); SV.highlight(article, []); return; }
      if (t.closest('summary, a, button, input, label')) return;
      const li = t.closest('li.step');
      if (li && !window.getSelection().toString()) select(article, li, true);
    });
    article.addEventListener('keydown', e => {
      const li = e.target.closest && e.target.closest('li.step');
      if (!li || e.target !== li) return;
      let next = null;
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(article, li, true); return; }
      if (e.key === 'ArrowDown') next = li.nextElementSibling;
      if (e.key === 'ArrowUp') next = li.previousElementSibling;
      if (next && next.matches('li.step')) { e.preventDefault(); next.focus(); select(article, next, true); }
    });
    article.querySelectorAll('.viewer-bar input[type=checkbox]').forEach(cb => {
      const apply = () => view.classList.toggle('hide-' + cb.dataset.layer, !cb.checked);
      cb.addEventListener('change', apply);
      apply();
    });
  });
})();
