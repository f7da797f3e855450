// Router of the single-page viewer: #/ (run) and #/s/<sample>[/<entry>] (one sample).
import {h} from './util.js';
import {renderRun, leaveRun} from './run.js';
import {renderSample, leaveSample} from './sample.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');

function setCrumbs(items) {
  const ol = h('ol');
  items.forEach(([label, href], i) => {
    const last = i === items.length - 1;
    ol.append(h('li', {}, href && !last ? h('a', {href}, label) : h('span', {'aria-current': last ? 'page' : null}, label)));
  });
  crumbs.replaceChildren(ol);
}

let current = '';
async function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const m = hash.match(/^\/s\/([^/?]+)(?:\/(\d+))?/);
  const key = m ? 's:' + m[1] : 'run';
  const moved = key !== current;
  current = key;
  try {
    if (m) {
      if (!moved) return;  // same sample, only the selected step changed (replaceState)
      leaveRun();
      main.setAttribute('aria-busy', 'true');
      await renderSample(main, decodeURIComponent(m[1]), m[2] === undefined ? null : Number(m[2]), setCrumbs);
    } else {
      if (!moved) return;
      leaveSample();
      main.setAttribute('aria-busy', 'true');
      await renderRun(main, hash.split('?')[1] || '', setCrumbs);
    }
    // on a sample page the keyboard starts on the timeline (↑/↓ move through the steps)
    const step = m ? main.querySelector('li.step[aria-current="step"]') || main.querySelector('li.step') : null;
    if (moved) (step || main).focus({preventScroll: true});
  } catch (err) {
    main.replaceChildren(h('div', {class: 'notice notice-error', role: 'alert'},
      h('strong', {}, 'Could not load this page: '), err.message, ' ', h('a', {href: '#/'}, 'Back to the run')));
  } finally {
    main.removeAttribute('aria-busy');
  }
}

window.addEventListener('hashchange', route);
route();
