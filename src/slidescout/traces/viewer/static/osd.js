// OpenSeadragon, loaded once on demand from the page's vendor/ folder (installed from the npm
// registry): the viewer's sample page and the studio's slide share it.

let osdPromise = null;
export function loadOSD() {
  if (window.OpenSeadragon) return Promise.resolve(window.OpenSeadragon);
  if (!osdPromise) {
    osdPromise = new Promise((resolve, reject) => {
      const tag = document.createElement('script');
      tag.src = 'vendor/openseadragon/openseadragon.min.js';
      tag.onload = () => resolve(window.OpenSeadragon);
      tag.onerror = () => { osdPromise = null; reject(new Error('could not load OpenSeadragon')); };
      document.head.append(tag);
    });
  }
  return osdPromise;
}
