// The Markdown report of loadtest/study-open/run.sh (after its machine
// section): node report.mjs CHECK_JSON REPLAY_JSONL BROWSER_JSONL INSTANCES CONNS
import { readFileSync } from 'node:fs';

const [checkFile, replayFile, browserFile, instances, conns] = process.argv.slice(2);
const lines = (f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map(JSON.parse);
const check = JSON.parse(readFileSync(checkFile, 'utf8'));
const replay = lines(replayFile);
const browser = lines(browserFile);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const ms = (x) => (Number.isFinite(x) ? `${Math.round(x)}` : '-');
const spread = (xs) => (xs.length ? `${ms(Math.min(...xs))}–${ms(Math.max(...xs))}` : '-');
const ratio = (x) => (Number.isFinite(x) ? x.toFixed(3) : '-');
const isFrameUrl = (url) => /\/frames\/\d+$/.test(url.split('?')[0]);
const out = [];
const p = (s = '') => out.push(s);

if (replay.length) {
  const cold = replay.filter((r) => !String(r.round).startsWith('warm'));
  const warm = replay.filter((r) => String(r.round).startsWith('warm'));
  const rounds = [...new Set(cold.map((r) => r.round))];
  const by = (path, rs = cold) => rs.filter((r) => r.path === path);
  p('## Replay: the requests OHIF issues to open the study');
  p();
  p(`One study, one CT series of ${instances} slices (512×512, 16-bit, uncompressed: ${(check.paths?.[0]?.frame_bytes / 1048576).toFixed(0)} MiB of frames).`);
  p('The sequence OHIF 3.13.2 issues, recorded in Chromium (section "OHIF in Chromium" below lists what it asked):');
  p('QIDO study query and series query at once, then the patient\'s other studies (refused by espace-ps by design: an');
  p('unscoped search) and the series metadata, then every frame');
  p(`(\`…/instances/{uid}/frames/1\`, \`Accept: multipart/related; type=application/octet-stream; transfer-syntax=*\`) over ${conns}`);
  p('keep-alive connections, fresh for each replay. Times from the first request, in ms. Each round replays the');
  p('three paths in turn (the order rotates); espace-ps is restarted and a new session opened before each of its');
  p('turns, so each espace-ps row opens the study for the first time (nothing resolved or decided in its caches);');
  p('"opened again": right after, in the same round, the same session replays it once more (its caches warm).');
  p(`Check before the rounds: ${check.ok ? 'every answer 200 (the patient search 403 through espace-ps), the same pixel data on every path' : `FAILED: ${check.problems?.join('; ')}`}.`);
  p();
  p(`| path | rounds | metadata answered | first frame | first frame, spread | last frame | last frame, spread | last frame / direct | per-round ratio, spread |`);
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const dLast = median(by('direct').map((r) => r.last_frame_ms));
  const perRound = (path, other) => rounds.map((rd) => {
    const a = cold.find((r) => r.round === rd && r.path === path);
    const b = cold.find((r) => r.round === rd && r.path === other);
    return a && b ? a.last_frame_ms / b.last_frame_ms : NaN;
  }).filter(Number.isFinite);
  const rows = [['direct', by('direct')], ['nginx', by('nginx')], ['espace-ps', by('espace-ps')]];
  if (warm.length) rows.push(['espace-ps, opened again (warm)', warm]);
  for (const [name, rs] of rows) {
    if (!rs.length) continue;
    const last = median(rs.map((r) => r.last_frame_ms));
    const pr = name === 'direct' ? [] : name.includes('warm') ? rounds.map((rd) => {
      const a = warm.find((r) => r.round === `warm-${rd}`);
      const b = cold.find((r) => r.round === rd && r.path === 'direct');
      return a && b ? a.last_frame_ms / b.last_frame_ms : NaN;
    }).filter(Number.isFinite) : perRound(name, 'direct');
    p(`| ${name} | ${rs.length} | ${ms(median(rs.map((r) => r.metadata_ms)))} | ${ms(median(rs.map((r) => r.first_frame_ms)))} | ${spread(rs.map((r) => r.first_frame_ms))} | **${ms(last)}** | ${spread(rs.map((r) => r.last_frame_ms))} | **${ratio(last / dLast)}** | ${pr.length ? `${ratio(median(pr))} (${ratio(Math.min(...pr))}–${ratio(Math.max(...pr))})` : '-'} |`);
  }
  p();
  p('Before the frames, and the CPU time each opening cost (medians; ms; "proxy": espace-ps, or nginx\'s workers,');
  p('user + system from `/proc`, 10 ms ticks; Orthanc the same, over the whole replay):');
  p();
  p('| path | study query answered | series query answered | metadata answered | frames phase (last frame − metadata) | proxy CPU | Orthanc CPU | proxy minor page faults |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const [name, rs] of rows) {
    if (!rs.length) continue;
    const m = (f) => ms(median(rs.map(f).filter((x) => x !== null && x !== undefined)));
    p(`| ${name} | ${m((r) => r.study_ms)} | ${m((r) => r.series_ms)} | ${m((r) => r.metadata_ms)} | ${m((r) => r.last_frame_ms - r.metadata_ms)} | ${name === 'direct' ? '-' : m((r) => r.proxy_cpu_ms)} | ${m((r) => r.orthanc_cpu_ms)} | ${name === 'direct' ? '-' : m((r) => r.proxy_minflt)} |`);
  }
  p();
  const e = median(by('espace-ps').map((r) => r.last_frame_ms));
  const n = median(by('nginx').map((r) => r.last_frame_ms));
  const en = perRound('espace-ps', 'nginx');
  p(`Goal: espace-ps ≤ 1.05 × direct to the last frame: **${ratio(e / dLast)}** (${e / dLast <= 1.05 ? 'met' : 'missed'});`);
  p(`not slower than nginx by more than 5 %: espace-ps / nginx **${ratio(e / n)}** (per round: median ${ratio(median(en))}, ${ratio(Math.min(...en))}–${ratio(Math.max(...en))}) (${e / n <= 1.05 ? 'met' : 'missed'}).`);
  p();
}

if (browser.length) {
  const timed = browser.filter((r) => r.run !== 'warm-up');
  p('## OHIF in Chromium: navigation to the first rendered image');
  p();
  p('OHIF 3.13.2 in Debian\'s Chromium (headless, software WebGL, playwright-core), a 1280×900 viewport, one browser');
  p('profile per path warmed once (OHIF\'s files in the HTTP cache). Timed from the navigation to');
  p('`/visionneuse/viewer?StudyInstanceUIDs=…` to the first animation frame at which a viewport canvas shows the slice');
  p('(mean luminance of its central 32×32 pixels between 60 and 200: the phantom\'s water at OHIF\'s window), with');
  p('cornerstone\'s first `CORNERSTONE_IMAGE_RENDERED` event beside it; "last frame": when the last of the frames');
  p('OHIF prefetched had arrived. espace-ps restarted with a new session before each of its runs (first opening).');
  p('nginx serves the same OHIF site (the same `index.html` less the portal\'s banner) and proxies the same DICOMweb.');
  p();
  p('| path | runs | first image | spread | cornerstone\'s event | frames fetched | last frame | spread | first image / nginx |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const nFirst = median(timed.filter((r) => r.path === 'nginx').map((r) => r.first_image_ms));
  for (const path of ['nginx', 'espace-ps']) {
    const rs = timed.filter((r) => r.path === path);
    if (!rs.length) continue;
    const f = median(rs.map((r) => r.first_image_ms));
    p(`| ${path} | ${rs.length} | **${ms(f)}** | ${spread(rs.map((r) => r.first_image_ms))} | ${ms(median(rs.map((r) => r.rendered_event_ms).filter((x) => x !== null)))} | ${median(rs.map((r) => r.frames))} | ${ms(median(rs.map((r) => r.last_frame_ms).filter((x) => x !== null)))} | ${spread(rs.map((r) => r.last_frame_ms).filter((x) => x !== null))} | ${path === 'nginx' ? '-' : `**${ratio(f / nFirst)}**`} |`);
  }
  p();
  const notOk = timed.filter((r) => Object.keys(r.not_200 || {}).length);
  if (notOk.length) {
    p('Answers that were not 200 during the timed runs (by path and kind, summed):');
    p();
    const sum = {};
    for (const r of notOk) for (const [k, n] of Object.entries(r.not_200)) sum[`${r.path}: ${k}`] = (sum[`${r.path}: ${k}`] || 0) + n;
    for (const [k, n] of Object.entries(sum)) p(`- ${k} × ${n}`);
    p();
    if (Object.keys(sum).some((k) => k.includes('ERR_ABORTED'))) {
      p('"failed (net::ERR_ABORTED)": frames whose answer arrived (status 200) but that Chromium reports as aborted.');
      p('OHIF fetches frames with `fetch()` (streamed); with `Cache-Control: no-store` on the answer, as espace-ps sends');
      p('on every viewer answer, Chromium reports them so; nginx with only that header added does the same (checked by');
      p('hand), and the study renders all the same. Their time still counts (the end of the transfer).');
      p();
    }
  }
  // Where the time to the first image goes, in each path's first timed run.
  const firstRuns = ['nginx', 'espace-ps'].map((path) => timed.find((r) => r.path === path && r.requests)).filter(Boolean);
  if (firstRuns.length) {
    p('Where the time to the first image goes, in each path\'s first timed run (ms from the navigation; "page files":');
    p('the last of the site\'s own files asked before the first DICOMweb request, answered):');
    p();
    p('| path | page answered | page files answered | first DICOMweb request sent | series metadata answered | first frame answered | first image |');
    p('|---|---:|---:|---:|---:|---:|---:|');
    for (const r of firstRuns) {
      const reqs = r.requests;
      const dicom = reqs.filter((e) => e.dicom);
      const firstDicom = dicom.length ? Math.min(...dicom.map((e) => e.start)) : null;
      const page = reqs.find((e) => !e.dicom && e.url.startsWith('/visionneuse/viewer'));
      const files = reqs.filter((e) => !e.dicom && e.end !== null && (firstDicom === null || e.start < firstDicom));
      const meta = dicom.find((e) => e.url.endsWith('/metadata'));
      const frames = dicom.filter((e) => isFrameUrl(e.url) && e.end !== null);
      const cell = (v) => (v === null || v === undefined ? '-' : ms(v));
      p(`| ${r.path} | ${cell(page?.end)} | ${cell(files.length ? Math.max(...files.map((e) => e.end)) : null)} (${files.length} files) | ${cell(firstDicom)} | ${cell(meta?.end)} | ${cell(frames.length ? Math.min(...frames.map((e) => e.end)) : null)} | ${cell(r.first_image_ms)} |`);
    }
    p();
  }
  const rec = browser.find((r) => r.requests && r.path === 'nginx' && r.run !== 'warm-up') || browser.find((r) => r.requests);
  if (rec) {
    p(`What OHIF asked, recorded in its first timed run through ${rec.path} (UIDs and the patient id elided; the replay sends these):`);
    p();
    p('| request | Accept | count | first sent (ms) |');
    p('|---|---|---:|---:|');
    const kinds = new Map();
    for (const r of rec.requests.filter((e) => e.dicom !== false)) {
      const k = `${r.url.replace(/[0-9.]{20,}/g, '{uid}').replace(/00100020=[^&]*/, '00100020={PatientID}')}|${r.accept}`;
      const e = kinds.get(k) || { n: 0, start: r.start };
      e.n += 1;
      kinds.set(k, e);
    }
    for (const [k, e] of kinds) {
      const [url, accept] = k.split('|');
      p(`| \`${url}\` | \`${accept}\` | ${e.n} | ${ms(e.start)} |`);
    }
    p();
  }
}
process.stdout.write(`${out.join('\n')}\n`);
