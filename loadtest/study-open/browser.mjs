// OHIF v3 in Chromium (Debian's, driven by playwright-core as the browser
// tests do): the time from the navigation to /visionneuse/viewer?StudyInstanceUIDs=…
// to the first rendered image, and to the last frame OHIF fetched, through
// each path. Part of loadtest/study-open/run.sh (see its README).
//
//   node browser.mjs --study UID --runs N --instances 300 \
//     --path nginx=URL --path espace-ps=URL --cookie espace-ps=espace-session=…
//
// Each path has its own browser profile, warmed once (OHIF's files in the
// HTTP cache, as for a doctor who used the viewer before). Then the paths
// take turns, N timed runs each. Before each espace-ps run the script writes
// "RESTART espace-ps" on stdout and reads a new session cookie on stdin:
// run.sh starts a fresh espace-ps (nothing resolved or decided yet, as when
// a doctor opens a study for the first time). One JSON line per run on
// stdout ("RESULT {…}"); the DICOMweb requests OHIF made are in each line.
//
// "First image": the first animation frame at which a canvas of the viewport
// shows the study, checked in the page (an init script): the centre of the
// generated CT slices is water (HU 40) drawn mid-grey at OHIF's default
// window, the background black; a canvas whose central 32x32 pixels average
// between 60 and 200 of luminance is showing a slice. Cornerstone's own
// CORNERSTONE_IMAGE_RENDERED event time is recorded beside it.

import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { chromium } = await import(path.join(ROOT, 'proxy/tests/browser/node_modules/playwright-core/index.mjs'));
const { CHROMIUM_ARGS } = await import(path.join(ROOT, 'proxy/tests/browser/lib/browser.mjs'));

function parseArgs(argv) {
  const a = { paths: [], cookies: {}, from: {}, runs: 3, instances: 300 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[++i];
    if (k === '--study') a.study = v;
    else if (k === '--runs') a.runs = Number(v);
    else if (k === '--instances') a.instances = Number(v);
    else if (k === '--path') { const [n, ...u] = v.split('='); a.paths.push({ name: n, base: u.join('=') }); }
    else if (k === '--cookie') { const [n, ...c] = v.split('='); a.cookies[n] = c.join('='); }
    else if (k === '--from') { const [n, ...f] = v.split('='); a.from[n] = f.join('='); }
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.study || a.paths.length === 0) throw new Error('--study and --path are needed');
  return a;
}
const args = parseArgs(process.argv.slice(2));
const log = (...m) => console.error(`[browser ${new Date().toISOString().slice(11, 19)}]`, ...m);

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
async function restart(name) {
  process.stdout.write(`RESTART ${name}\n`);
  const { value, done } = await lines.next();
  if (done || !value) throw new Error('no new cookie on stdin');
  return value.trim();
}

// In the page, from the first script on: the first animation frame showing
// a slice, and cornerstone's first IMAGE_RENDERED event.
function monitor() {
  const s = (self.__studyOpen = { firstImage: null, rendered: null });
  document.addEventListener('CORNERSTONE_IMAGE_RENDERED', () => {
    if (s.rendered === null) s.rendered = performance.timeOrigin + performance.now();
  }, true);
  const check = () => {
    for (const c of document.querySelectorAll('canvas')) {
      if (c.width < 128 || c.height < 128) continue;
      let ctx = null;
      try { ctx = c.getContext('2d', { willReadFrequently: true }); } catch { ctx = null; }
      if (!ctx) continue;
      const d = ctx.getImageData((c.width >> 1) - 16, (c.height >> 1) - 16, 32, 32).data;
      let sum = 0;
      for (let i = 0; i < d.length; i += 4) sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      const mean = sum / (d.length / 4);
      if (mean > 60 && mean < 200) {
        s.firstImage = performance.timeOrigin + performance.now();
        return;
      }
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}

async function openContext(p) {
  const profile = mkdtempSync(path.join(tmpdir(), 'espace-study-open-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  await context.addInitScript(monitor);
  const page = context.pages()[0] || (await context.newPage());
  const reqs = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    // Every request of the page (its own files too), the DICOMweb ones marked.
    if (u.origin !== new URL(p.base).origin) return;
    const dicom = u.pathname.startsWith('/dicom-web/');
    reqs.push({ r, dicom, url: u.pathname + u.search, accept: r.headers().accept || '', start: Date.now(), end: null, status: null });
  });
  const done = async (r, ok) => {
    const e = reqs.find((x) => x.r === r);
    if (!e) return;
    const end = Date.now();
    e.status = ok ? (await r.response())?.status() ?? 0 : `failed (${r.failure()?.errorText})`;
    // Answered from the browser's HTTP cache: no body came over the network.
    e.cached = ok ? ((await r.sizes().catch(() => null))?.responseBodySize ?? 1) <= 0 : false;
    e.end = end;
  };
  // An answer that clears the browser's cache or storage (a session that
  // ended) spoils the next opening's warm cache: say so.
  page.on('response', (r) => {
    const clear = r.headers()['clear-site-data'];
    if (clear) log(`${p.name}: ${r.status()} ${new URL(r.url()).pathname} cleared the site's data (${clear})`);
  });
  page.on('requestfinished', (r) => { done(r, true); });
  page.on('requestfailed', (r) => { done(r, false); });
  return {
    p, context, page, reqs, profile,
    async setCookie(cookie) {
      const [name, ...value] = cookie.split('=');
      await context.clearCookies();
      await context.addCookies([{ name, value: value.join('='), url: p.base }]);
    },
    async close() { await context.close(); rmSync(profile, { recursive: true, force: true }); },
  };
}

const isFrame = (url) => /\/frames\/\d+$/.test(url.split('?')[0]);

/** One navigation to the study; resolves to its timings. */
async function openStudy(c) {
  // The page the doctor clicks from. Through espace-ps, the portal: a page
  // of the same origin and the same Cross-Origin-Opener-Policy, so the
  // viewer opens in the same browser process (its in-memory caches warm).
  // From about:blank, a page with that policy gets a new process each time,
  // which no doctor coming from the portal pays. nginx sends no such policy:
  // about:blank keeps its process.
  const from = args.from[c.p.name];
  await c.page.goto(from ? `${c.p.base}${from}` : 'about:blank', { waitUntil: 'load' });
  c.reqs.length = 0;
  const t0 = Date.now();
  await c.page.goto(`${c.p.base}/visionneuse/viewer?StudyInstanceUIDs=${args.study}`, { waitUntil: 'commit', timeout: 60_000 });
  const h = await c.page.waitForFunction(() => self.__studyOpen && self.__studyOpen.firstImage, null, { timeout: 120_000, polling: 50 })
    .catch(async (e) => {
      const shot = path.join(tmpdir(), `study-open-${c.p.name}.png`);
      await c.page.screenshot({ path: shot }).catch(() => {});
      log(`${c.p.name}: no image (screenshot ${shot}); DICOMweb requests:`);
      for (const r of c.reqs) log(`  ${r.status} ${r.url} [${r.accept}]`);
      throw e;
    });
  const first = await h.jsonValue();
  const rendered = await c.page.evaluate(() => self.__studyOpen.rendered);
  // OHIF prefetches the displayed series: wait (bounded) until it fetched
  // every frame, or until nothing more is asked for 5 s.
  const deadline = Date.now() + 180_000;
  let last = Date.now();
  let seen = 0;
  for (;;) {
    const frames = c.reqs.filter((e) => e.dicom && isFrame(e.url));
    const finished = frames.filter((e) => e.end !== null).length;
    if (frames.length >= args.instances && finished === frames.length) break;
    if (c.reqs.length !== seen) { seen = c.reqs.length; last = Date.now(); }
    if (Date.now() - last > 5_000 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const frames = c.reqs.filter((e) => e.dicom && isFrame(e.url) && e.end !== null);
  const lastFrame = frames.length ? Math.max(...frames.map((e) => e.end)) : null;
  // Answers that were not 200, by kind (the UIDs left out).
  const bad = {};
  for (const e of c.reqs.filter((x) => x.dicom && x.status !== 200)) {
    const k = `${e.status} ${e.url.split('?')[0].replace(/[0-9.]{20,}/g, '…')}`;
    bad[k] = (bad[k] || 0) + 1;
  }
  return {
    first_image_ms: first - t0,
    rendered_event_ms: rendered ? rendered - t0 : null,
    frames: frames.length,
    last_frame_ms: lastFrame ? lastFrame - t0 : null,
    not_200: bad,
    requests: c.reqs.map((e) => ({ dicom: e.dicom, cached: e.cached, url: e.url, accept: e.accept, status: e.status, start: e.start - t0, end: e.end === null ? null : e.end - t0 })),
  };
}

const contexts = [];
try {
  for (const p of args.paths) {
    const c = await openContext(p);
    contexts.push(c);
    if (args.cookies[p.name]) await c.setCookie(args.cookies[p.name]);
    const w = await openStudy(c);
    log(`${p.name}: warm-up, first image ${w.first_image_ms} ms, ${w.frames} frames, last ${w.last_frame_ms} ms`);
    process.stdout.write(`RESULT ${JSON.stringify({ path: p.name, run: 'warm-up', ...w })}\n`);
  }
  for (let run = 1; run <= args.runs; run++) {
    const order = run % 2 ? contexts : [...contexts].reverse();
    for (const c of order) {
      // Leave the study before espace-ps restarts: a request of the open
      // page (the banner's session check) reaching the new process with the
      // old session's cookie is answered as a session that ended, which
      // clears the browser's cache (Clear-Site-Data), as it should after a
      // real session end, and would time a cold cache against nginx's warm one.
      await c.page.goto('about:blank');
      // Both paths get the same cookie operations between runs (clearing
      // cookies also empties the page's in-memory cache of scripts): only
      // espace-ps needs a new session.
      await c.setCookie(args.cookies[c.p.name] ? await restart(c.p.name) : 'study-open-bench=1');
      const r = await openStudy(c);
      log(`${c.p.name} run ${run}: first image ${r.first_image_ms} ms (event ${r.rendered_event_ms}), ${r.frames} frames, last ${r.last_frame_ms} ms${Object.keys(r.not_200).length ? `, not 200: ${JSON.stringify(r.not_200)}` : ''}`);
      process.stdout.write(`RESULT ${JSON.stringify({ path: c.p.name, run, ...r, requests: run === 1 ? r.requests : undefined })}\n`);
    }
  }
} finally {
  for (const c of contexts) await c.close().catch(() => {});
  stdin.close();
}
