// Tests of the portal's front-end pure functions, the service worker's
// routing and the PWA manifest. Run: node --test portal-pages/static/tests/
// No dependencies: app.js and sw.js are loaded in this realm with a `module`
// object, which makes them export their functions instead of starting.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import vm from 'node:vm';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function load(file) {
  const src = readFileSync(path.join(STATIC, file), 'utf8');
  const fn = vm.runInThisContext('(function (module) {' + src + '\n})', { filename: file });
  const mod = { exports: {} };
  fn(mod);
  return mod.exports;
}

const app = load('app.js');
const sw = load('sw.js');

function fakeTimers() {
  let now = 0;
  let next = 1;
  const queue = new Map();
  return {
    setTimeout(fn, ms) {
      const id = next++;
      queue.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      queue.delete(id);
    },
    advance(ms) {
      now += ms;
      for (const [id, t] of [...queue].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at <= now) {
          queue.delete(id);
          t.fn();
        }
      }
    },
  };
}

// === search query and debounce ===

test('a search starts at 2 characters, trimmed', () => {
  assert.equal(app.MIN_CHARS, 2);
  for (const v of ['', ' ', 'a', '  a  ', 'é', null, undefined]) {
    assert.equal(app.normalizeQuery(v), null, JSON.stringify(v));
  }
  assert.equal(app.normalizeQuery('ab'), 'ab');
  assert.equal(app.normalizeQuery('  sca   nap '), 'sca nap');
  assert.equal(app.normalizeQuery('Lé'), 'Lé');
});

test('debounce: only the last call of a burst runs, once, after the wait', () => {
  const timers = fakeTimers();
  const calls = [];
  const d = app.createDebouncer((q) => calls.push(q), 250, timers);
  d.call('sc');
  timers.advance(100);
  d.call('sca');
  timers.advance(100);
  d.call('scan');
  assert.ok(d.pending());
  timers.advance(249);
  assert.deepEqual(calls, []);
  timers.advance(1);
  assert.deepEqual(calls, ['scan']);
  assert.ok(!d.pending());
  timers.advance(1000);
  assert.deepEqual(calls, ['scan']);
});

test('debounce: cancel drops the pending call', () => {
  const timers = fakeTimers();
  const calls = [];
  const d = app.createDebouncer((q) => calls.push(q), 250, timers);
  d.call('sc');
  d.cancel();
  timers.advance(500);
  assert.deepEqual(calls, []);
  assert.ok(!d.pending());
});

test('typing session: no request below 2 characters, one per pause (real timer API, mocked)', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const sent = [];
    const d = app.createDebouncer((q) => sent.push(q), app.DEBOUNCE_MS);
    const type = (value) => {
      const q = app.normalizeQuery(value);
      if (q === null) d.cancel();
      else d.call(q);
    };
    type('s');
    mock.timers.tick(400);
    assert.deepEqual(sent, [], 'one character sends nothing');
    type('sc');
    mock.timers.tick(100);
    type('sca');
    mock.timers.tick(250);
    assert.deepEqual(sent, ['sca']);
    type('scan');
    mock.timers.tick(100);
    type('s'); // erased back below the minimum before the pause
    mock.timers.tick(1000);
    assert.deepEqual(sent, ['sca']);
  } finally {
    mock.timers.reset();
  }
});

test('status messages', () => {
  assert.equal(app.resultStatus(0, false), 'Aucun patient ne correspond à votre recherche.');
  assert.equal(app.resultStatus(1, false), '1 patient trouvé');
  assert.equal(app.resultStatus(3, false), '3 patients trouvés');
  assert.match(app.resultStatus(50, true), /^Plus de 50 patients trouvés/);
  assert.equal(app.MSG.tooShort, 'Saisissez au moins 2 caractères');
});

// === date auto-format ===

test('date of birth: slashes inserted as digits are typed', () => {
  const cases = [
    ['', ''],
    ['1', '1'],
    ['13', '13'],
    ['130', '13/0'],
    ['1308', '13/08'],
    ['13081', '13/08/1'],
    ['13081961', '13/08/1961'],
    ['130819612', '13/08/1961'], // at most 8 digits
    ['13/08/1961', '13/08/1961'], // idempotent
    ['13/', '13/'], // the slash typed after the day is kept
    ['13/08/', '13/08/'],
    ['1/', '01/'], // one-digit day closed with a slash
    ['01/3/', '01/03/'],
    ['1/3/1961', '01/03/1961'],
    ['13-08-1961', '13/08/1961'],
    ['13.08.1961', '13/08/1961'],
    ['1961-08-13', '13/08/1961'], // pasted ISO date
    ['ab', ''],
    ['1a3', '01/3'], // any non-digit separates
  ];
  for (const [input, want] of cases) {
    assert.equal(app.formatDateInput(input), want, JSON.stringify(input));
  }
  for (const [, want] of cases) {
    assert.equal(app.formatDateInput(want), want, 'idempotent on ' + want);
  }
});

// === "Mes dernières recherches" ===

const P = (id, extra) => ({ id, sex: 'F', family_name: 'SCANAP', given_name: 'Françoise', birth_date: '13/08/1961', ...extra });

test('recent list: newest first, deduplicated by id, capped at 10', () => {
  let list = [];
  for (let i = 1; i <= 12; i++) list = app.addRecent(list, P(i));
  assert.equal(list.length, 10);
  assert.deepEqual(list.map((p) => p.id), ['12', '11', '10', '9', '8', '7', '6', '5', '4', '3']);
  list = app.addRecent(list, P(7)); // reopened: moves to the top, once
  assert.deepEqual(list.map((p) => p.id), ['7', '12', '11', '10', '9', '8', '6', '5', '4', '3']);
  list = app.addRecent(list, P('12')); // numeric and string ids are the same patient
  assert.equal(list.filter((p) => p.id === '12').length, 1);
  assert.equal(list[0].id, '12');
  assert.equal(app.addRecent([], P(1), 3).length, 1);
  assert.equal(app.RECENT_MAX, 10);
  assert.equal(app.RECENT_KEY, 'espace-ps:recent');
});

test('recent list stores the minimum: id, sex, names, birth date', () => {
  const [p] = app.addRecent([], P(5, { url: '/portail/patients/5', reports: ['CR'], ipp: '123', birth_date: '1961-08-13' }));
  assert.deepEqual(Object.keys(p).sort(), ['birth_date', 'family_name', 'given_name', 'id', 'sex']);
  assert.equal(p.birth_date, '', 'a malformed date is dropped');
  assert.deepEqual(app.addRecent([], { family_name: 'X' }), [], 'no id, not kept');
  assert.deepEqual(app.addRecent([P(1)], null).map((x) => x.id), ['1']);
  assert.equal(app.sanitizePatient(P(1, { sex: '<b>' })).sex, '');
  assert.equal(app.sanitizePatient(P(1, { family_name: 'A\u0000B' })).family_name, 'AB');
});

test('stored list: anything unexpected reads as empty, duplicates dropped', () => {
  assert.deepEqual(app.parseRecent(null), []);
  assert.deepEqual(app.parseRecent('not json'), []);
  assert.deepEqual(app.parseRecent('{"a":1}'), []);
  const twice = JSON.stringify([P(1), P(2), P(1), { nope: true }]);
  assert.deepEqual(app.parseRecent(twice).map((p) => p.id), ['1', '2']);
  const many = JSON.stringify(Array.from({ length: 30 }, (_, i) => P(i)));
  assert.equal(app.parseRecent(many).length, 10);
});

test('patient label and links', () => {
  assert.equal(app.patientLabel(P(1)), '♀ SCANAP Françoise');
  assert.equal(app.patientLabel(P(1, { sex: 'M', family_name: 'Dupont', given_name: 'Jean' })), '♂ DUPONT Jean');
  assert.equal(app.patientLabel(P(1, { sex: 'U' })), 'SCANAP Françoise');
  // The symbol's name for screen readers: the server's words (sex_label).
  assert.equal(app.sexLabel('F'), 'Femme');
  assert.equal(app.sexLabel('M'), 'Homme');
  assert.equal(app.sexLabel('U'), '');
  const p = app.sanitizePatient(P('a/b?c'));
  assert.equal(app.patientUrl(p), '/portail/patients/a%2Fb%3Fc');
  assert.equal(app.patientUrl(p, '/portail/patients/42'), '/portail/patients/42');
  for (const bad of ['javascript:alert(1)', '//evil.example/x', 'https://evil.example/', '/portail/../auth/logout', '/auth/logout', '/portail/a b', 42]) {
    assert.equal(app.patientUrl(p, bad), '/portail/patients/a%2Fb%3Fc', String(bad));
  }
});

test('app.js never writes markup from data', () => {
  const src = readFileSync(path.join(STATIC, 'app.js'), 'utf8');
  assert.doesNotMatch(src, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
});

// === service worker ===

test('service worker: versioned cache, shell only', () => {
  assert.match(sw.CACHE_NAME, /^espace-ps-shell-v\d+$/);
  assert.deepEqual([...sw.SHELL].sort(), [
    '/manifest.webmanifest',
    '/static/app.js',
    '/static/hors-ligne.html',
    '/static/icons/icon-192.png',
    '/static/icons/icon-512.png',
    '/static/icons/maskable-512.png',
    '/static/style.css',
  ]);
  for (const p of sw.SHELL) {
    const file = p === '/manifest.webmanifest' ? 'manifest.webmanifest' : p.replace(/^\/static\//, '');
    assert.ok(existsSync(path.join(STATIC, file)), p + ' exists');
  }
});

test('service worker routing: patient data is never handled', () => {
  const O = 'https://espace.example';
  const r = (method, p, mode = 'cors') => sw.route(method, O + p, mode, O);
  // Pages: network, offline page only when the network fails.
  assert.equal(r('GET', '/', 'navigate'), 'navigate');
  assert.equal(r('GET', '/portail/patients/12', 'navigate'), 'navigate');
  assert.equal(r('POST', '/auth/logout', 'navigate'), 'pass');
  // Shell: cache first, exact paths only.
  for (const p of sw.SHELL) assert.equal(r('GET', p), 'shell', p);
  assert.equal(r('GET', '/static/app.js?v=2'), 'pass');
  assert.equal(r('HEAD', '/static/app.js'), 'pass');
  assert.equal(r('POST', '/static/app.js'), 'pass');
  // Everything else goes straight to the network.
  for (const p of [
    '/api/portail/patients?q=sc', '/portail/comptes-rendus/1', '/portail/images/1.2.3',
    '/web-viewer/app/viewer.html', '/dicom-web/studies/1.2.3/series', '/wado?requestType=WADO',
    '/instances/abc/file', '/auth/login', '/sw.js', '/static/other.js', '/static/icons/',
  ]) {
    assert.equal(r('GET', p), 'pass', p);
  }
  assert.equal(sw.route('GET', 'https://other.example/static/app.js', 'cors', O), 'pass');
  assert.equal(sw.route('GET', 'not a url', 'cors', O), 'pass');
});

test('service worker: no-store responses are not cacheable', () => {
  const res = (cc, extra = {}) => ({
    ok: true, status: 200, type: 'basic', redirected: false,
    headers: { get: (h) => (h.toLowerCase() === 'cache-control' ? cc : null) },
    ...extra,
  });
  assert.ok(sw.isCacheable(res('public, max-age=3600')));
  assert.ok(sw.isCacheable(res(null)));
  assert.ok(!sw.isCacheable(res('no-store')));
  assert.ok(!sw.isCacheable(res('private, NO-STORE')));
  assert.ok(!sw.isCacheable(res('public', { status: 206 })));
  assert.ok(!sw.isCacheable(res('public', { type: 'opaque' })));
  assert.ok(!sw.isCacheable(res('public', { redirected: true })));
});

// === manifest: installability criteria ===

function pngSize(file) {
  const b = readFileSync(file);
  assert.equal(b.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', file + ' is a PNG');
  assert.equal(b.subarray(12, 16).toString('latin1'), 'IHDR');
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

test('manifest meets the installability criteria', () => {
  const m = JSON.parse(readFileSync(path.join(STATIC, 'manifest.webmanifest'), 'utf8'));
  assert.equal(m.name, 'Espace professionnel de santé');
  assert.equal(m.short_name, 'Espace PS');
  assert.ok(m.short_name.length <= 12, 'short_name fits under an icon');
  assert.equal(m.lang, 'fr');
  assert.equal(m.dir, 'ltr');
  assert.equal(m.start_url, '/');
  assert.equal(m.scope, '/');
  assert.ok(m.start_url.startsWith(m.scope), 'start_url within scope');
  assert.equal(m.display, 'standalone');
  assert.equal(m.theme_color, '#000091');
  assert.equal(m.background_color, '#ffffff');
  assert.ok(m.description && m.description.length > 20);
  const want = [['192x192', 'any'], ['512x512', 'any'], ['512x512', 'maskable']];
  for (const [sizes, purpose] of want) {
    const icon = m.icons.find((i) => i.sizes === sizes && i.purpose === purpose);
    assert.ok(icon, sizes + ' ' + purpose);
    assert.equal(icon.type, 'image/png');
    assert.match(icon.src, /^\/static\/icons\/[a-z0-9-]+\.png$/);
    const [w, h] = pngSize(path.join(STATIC, icon.src.replace(/^\/static\//, '')));
    assert.equal(`${w}x${h}`, sizes, icon.src);
  }
});

test('offline page: static, French, no inline script or style', () => {
  const html = readFileSync(path.join(STATIC, 'hors-ligne.html'), 'utf8');
  assert.match(html, /<html lang="fr">/);
  assert.match(html, /Vous êtes hors ligne/);
  assert.match(html, /<script src="\/static\/app\.js" defer><\/script>/);
  assert.match(html, /href="\/static\/style\.css"/);
  assert.match(html, /rel="manifest" href="\/manifest\.webmanifest"/);
  assert.match(html, /id="dernieres-recherches"/);
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'inline script');
  assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'inline style or handler');
});

// === service worker lifecycle, simulated (fake self, caches and fetch) ===

function fakeWorker({ network }) {
  const listeners = {};
  const store = new Map(); // cache name -> Map(path -> Response)
  const cacheOf = (name) => {
    if (!store.has(name)) store.set(name, new Map());
    const m = store.get(name);
    const key = (r) => new URL(typeof r === 'string' ? r : r.url, 'https://espace.example').pathname;
    return {
      put: async (r, res) => { m.set(key(r), res); },
      match: async (r) => m.get(key(r)),
    };
  };
  // As in a browser, a relative URL resolves against the worker's location.
  class WorkerRequest extends Request {
    constructor(input, init) {
      super(typeof input === 'string' ? new URL(input, 'https://espace.example/sw.js').href : input, init);
    }
  }
  const ctx = {
    URL, Request: WorkerRequest, Response, Headers, console, Promise,
    fetch: async (req) => network(typeof req === 'string' ? req : req.url, req),
    caches: {
      open: async (n) => cacheOf(n),
      keys: async () => [...store.keys()],
      delete: async (n) => store.delete(n),
    },
    self: {
      location: new URL('https://espace.example/sw.js'),
      addEventListener: (type, fn) => { listeners[type] = fn; },
      skipWaiting: async () => { ctx.skipped = true; },
      clients: { claim: async () => { ctx.claimed = true; } },
    },
  };
  vm.createContext(ctx);
  vm.runInContext(readFileSync(path.join(STATIC, 'sw.js'), 'utf8'), ctx, { filename: 'sw.js' });
  const dispatch = async (type, extra) => {
    let waited = null;
    let responded = null;
    listeners[type]({ ...extra, waitUntil: (p) => { waited = p; }, respondWith: (p) => { responded = p; } });
    if (waited) await waited;
    return responded;
  };
  return { ctx, store, dispatch };
}

const ok = (body, cc = 'public, max-age=3600') =>
  new Response(body, { status: 200, headers: { 'Cache-Control': cc } });

test('service worker: install precaches the shell, activate drops old caches', async () => {
  const asked = [];
  const w = fakeWorker({ network: async (url, req) => { asked.push([new URL(url, 'https://espace.example').pathname, req.cache]); return ok('x'); } });
  w.store.set('espace-ps-shell-v0', new Map());
  w.store.set('unrelated', new Map());
  await w.dispatch('install');
  assert.deepEqual(asked.map((a) => a[0]).sort(), [...sw.SHELL].sort());
  assert.ok(asked.every((a) => a[1] === 'reload'), 'precache bypasses the HTTP cache');
  assert.equal(w.store.get(sw.CACHE_NAME).size, sw.SHELL.length);
  await w.dispatch('activate');
  assert.deepEqual([...w.store.keys()], [sw.CACHE_NAME]);
  assert.ok(w.ctx.claimed);
});

test('service worker: a failed precache fails the install; no-store is not kept', async () => {
  const bad = fakeWorker({ network: async (url) => (url.endsWith('app.js') ? new Response('', { status: 404 }) : ok('x')) });
  await assert.rejects(bad.dispatch('install'));
  const nostore = fakeWorker({ network: async (url) => (url.endsWith('style.css') ? ok('x', 'no-store') : ok('x')) });
  const warn = console.warn;
  console.warn = () => {};
  try { await nostore.dispatch('install'); } finally { console.warn = warn; }
  assert.equal(nostore.store.get(sw.CACHE_NAME).has('/static/style.css'), false);
});

test('service worker: fetch — offline page on network failure, data never touched', async () => {
  let online = true;
  const w = fakeWorker({
    network: async (url) => {
      if (!online) throw new TypeError('Failed to fetch');
      return ok('net ' + new URL(url, 'https://espace.example').pathname);
    },
  });
  await w.dispatch('install');
  const req = (p, init = {}) => ({ url: 'https://espace.example' + p, method: 'GET', mode: 'cors', ...init });
  // Navigations go to the network while it works.
  let res = await w.dispatch('fetch', { request: req('/portail/patients/7', { mode: 'navigate' }) });
  assert.equal(await (await res).text(), 'net /portail/patients/7');
  online = false;
  res = await w.dispatch('fetch', { request: req('/portail/patients/7', { mode: 'navigate' }) });
  assert.equal(await (await res).text(), 'net /static/hors-ligne.html', 'the precached offline page');
  // Shell files come from the cache, even offline.
  res = await w.dispatch('fetch', { request: req('/static/app.js') });
  assert.equal(await (await res).text(), 'net /static/app.js');
  // Data and everything else: no respondWith at all.
  for (const p of ['/api/portail/patients?q=sc', '/portail/comptes-rendus/1', '/dicom-web/studies', '/wado?x=1', '/instances/1/file', '/web-viewer/app/']) {
    assert.equal(await w.dispatch('fetch', { request: req(p) }), null, p);
  }
  assert.equal(await w.dispatch('fetch', { request: req('/auth/logout', { method: 'POST', mode: 'navigate' }) }), null);
  // Nothing but the shell was ever stored.
  assert.deepEqual([...w.store.get(sw.CACHE_NAME).keys()].sort(), [...sw.SHELL].sort());
});

// === session end: "Mes dernières recherches" does not outlive the session ===

function fakeStorage() {
  const m = new Map();
  return {
    get length() { return m.size; },
    key(i) { return [...m.keys()][i] ?? null; },
    getItem(k) { return m.has(k) ? m.get(k) : null; },
    setItem(k, v) { m.set(k, String(v)); },
    removeItem(k) { m.delete(k); },
    clear() { m.clear(); },
  };
}

function fakeBody(attrs) {
  return {
    body: {
      hasAttribute: (n) => Object.prototype.hasOwnProperty.call(attrs, n),
      getAttribute: (n) => (Object.prototype.hasOwnProperty.call(attrs, n) ? attrs[n] : null),
    },
  };
}

test('the offline page drops the recent list once the session has timed out', () => {
  const saved = { ls: globalThis.localStorage, ss: globalThis.sessionStorage };
  const ls = fakeStorage();
  Object.defineProperty(globalThis, 'localStorage', { value: ls, configurable: true, writable: true });
  Object.defineProperty(globalThis, 'sessionStorage', { value: fakeStorage(), configurable: true, writable: true });
  try {
    const list = [{ id: '10000001', sex: 'F', family_name: 'SCANAP', given_name: 'Françoise', birth_date: '13/08/1961' }];
    ls.setItem(app.RECENT_KEY, JSON.stringify(list));
    // A signed-in page: the session ends in 30 min if nothing else happens.
    app.rememberSessionEnd(fakeBody({ 'data-signed-in': '1', 'data-session-remaining-ms': '1800000' }), 1_000);
    assert.ok(app.storedSessionAlive(1_000 + 1_799_999));
    assert.deepEqual(app.recentForOffline(1_000 + 1_799_999), list, 'still within the session');
    // Past the deadline (idle or absolute timeout): nothing shown, nothing kept.
    assert.ok(!app.storedSessionAlive(1_000 + 1_800_000));
    assert.deepEqual(app.recentForOffline(1_000 + 1_800_000), []);
    assert.equal(ls.getItem(app.RECENT_KEY), null, 'the stored list is removed');
    // No recorded deadline (stored by an older page, or storage tampered): not shown.
    ls.setItem(app.RECENT_KEY, JSON.stringify(list));
    assert.deepEqual(app.recentForOffline(0), []);
    assert.equal(ls.getItem(app.RECENT_KEY), null);
    // Signed-out pages and malformed values record nothing.
    app.rememberSessionEnd(fakeBody({ 'data-signed-out': '1', 'data-session-remaining-ms': '1800000' }), 0);
    app.rememberSessionEnd(fakeBody({ 'data-signed-in': '1', 'data-session-remaining-ms': 'x' }), 0);
    app.rememberSessionEnd(fakeBody({ 'data-signed-in': '1', 'data-session-remaining-ms': '0' }), 0);
    assert.ok(!app.storedSessionAlive(0));
  } finally {
    for (const [k, v] of [['localStorage', saved.ls], ['sessionStorage', saved.ss]]) {
      if (v === undefined) delete globalThis[k];
      else Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
    }
  }
});

test('a dossier opened by its number: the recent entry keeps it and links to it', () => {
  const p = app.sanitizePatient({ id: '10000009', sex: 'M', family_name: 'LE BRIS', given_name: 'Maël', birth_date: '14/07/1990', dossier: '20240000021' });
  assert.equal(p.dossier, '20240000021');
  assert.equal(app.patientUrl(p), '/portail/dossiers/20240000021');
  for (const bad of ['../x', 'a/b', '', 42, 'x'.repeat(65)]) {
    const q = app.sanitizePatient({ id: '1', dossier: bad });
    assert.equal('dossier' in q, false, String(bad));
    assert.equal(app.patientUrl(q), '/portail/patients/1');
  }
});

test('the session notice shows two minutes before the end, at once when less is left', () => {
  assert.equal(app.warningDelay(30 * 60 * 1000), 28 * 60 * 1000);
  assert.equal(app.warningDelay(90 * 1000), 0);
  assert.equal(app.warningDelay(10 * 60 * 1000, 60 * 1000), 9 * 60 * 1000);
  for (const bad of [0, -5, 'x', null, undefined, NaN]) assert.equal(app.warningDelay(bad), null, String(bad));
});
