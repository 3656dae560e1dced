/* Service worker of espace-ps, served at /sw.js with scope "/".
 *
 * It caches the app shell ONLY (style, script, manifest, icons, offline
 * page). Patient data never enters a cache: pages, reports, images, the
 * viewer, DICOM, /api, /portail and /auth always go to the network and are
 * never answered from a cache. When a page cannot be reached because the
 * network is down, the offline page answers instead.
 *
 * Release: bump VERSION below; the new worker precaches the new shell and
 * deletes every other cache on activation.
 */
'use strict';

const VERSION = 'v3';
const CACHE_NAME = 'espace-ps-shell-' + VERSION;
const OFFLINE_PAGE = '/static/hors-ligne.html';

// Same-origin paths, exact match, no query string.
const SHELL = [
  '/static/style.css',
  '/static/app.js',
  '/manifest.webmanifest',
  '/static/icons/icon-192.png',
  '/static/icons/icon-512.png',
  '/static/icons/maskable-512.png',
  OFFLINE_PAGE,
];

/** True when the response says it must not be stored. */
function isNoStore(response) {
  const cc = (response.headers.get('Cache-Control') || '').toLowerCase();
  return /(^|[,\s])no-store($|[,\s])/.test(cc);
}

/** Whether a response may be put in the shell cache. */
function isCacheable(response) {
  return Boolean(response) && response.ok && response.status === 200 &&
    response.type === 'basic' && !response.redirected && !isNoStore(response);
}

/**
 * Decides what to do with a request: 'navigate' (network, offline page on
 * failure), 'shell' (cache first) or 'pass' (not touched at all).
 * Pure, so the tests can call it.
 */
function route(method, url, mode, origin) {
  let u;
  try {
    u = new URL(url);
  } catch (e) {
    return 'pass';
  }
  if (u.origin !== origin) return 'pass';
  if (mode === 'navigate') return method === 'GET' ? 'navigate' : 'pass';
  if (method !== 'GET') return 'pass';
  if (u.search === '' && SHELL.indexOf(u.pathname) !== -1) return 'shell';
  return 'pass';
}

function offlineFallback() {
  return caches.open(CACHE_NAME)
    .then((cache) => cache.match(OFFLINE_PAGE))
    .then((hit) => hit || new Response(
      'Vous êtes hors ligne. La connexion à l\'espace professionnel de santé est nécessaire pour afficher cette page.',
      { status: 503, headers: { 'Content-Type': 'text/plain; charset=utf-8' } }
    ));
}

async function precache() {
  const cache = await caches.open(CACHE_NAME);
  await Promise.all(SHELL.map(async (path) => {
    // 'reload' skips the HTTP cache so a release never precaches stale files.
    const response = await fetch(new Request(path, { cache: 'reload', credentials: 'same-origin' }));
    if (!response.ok) throw new Error('precache ' + path + ': HTTP ' + response.status);
    if (isNoStore(response)) {
      // Honour the server: an asset marked no-store is not kept.
      console.warn('espace-ps: ' + path + ' is no-store, not precached');
      return;
    }
    await cache.put(path, response);
  }));
}

async function shellFirst(request) {
  const cache = await caches.open(CACHE_NAME);
  const hit = await cache.match(request, { ignoreVary: true });
  if (hit) return hit;
  const response = await fetch(request);
  if (isCacheable(response)) {
    await cache.put(request, response.clone()).catch(() => {});
  }
  return response;
}

if (typeof self !== 'undefined' && typeof self.addEventListener === 'function' &&
    typeof module === 'undefined') {
  self.addEventListener('install', (event) => {
    event.waitUntil(precache().then(() => self.skipWaiting()));
  });

  self.addEventListener('activate', (event) => {
    event.waitUntil(
      caches.keys()
        .then((names) => Promise.all(
          names.filter((n) => n !== CACHE_NAME).map((n) => caches.delete(n))
        ))
        .then(() => self.clients.claim())
    );
  });

  self.addEventListener('fetch', (event) => {
    const req = event.request;
    switch (route(req.method, req.url, req.mode, self.location.origin)) {
      case 'navigate':
        // Never cached: the page goes to the network; only a network failure
        // (not an HTTP error, which the server explains itself) gets the
        // offline page.
        event.respondWith(fetch(req).catch(offlineFallback));
        break;
      case 'shell':
        event.respondWith(shellFirst(req));
        break;
      default:
        // No respondWith: the browser fetches it as if there were no worker.
        break;
    }
  });
}

if (typeof module === 'object' && module && module.exports) {
  module.exports = { VERSION, CACHE_NAME, OFFLINE_PAGE, SHELL, route, isNoStore, isCacheable };
}
