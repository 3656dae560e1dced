// Replays the DICOMweb requests OHIF v3 (@ohif/app 3.13.2, deploy/ohif/app-config.js)
// issues to open a study, as recorded in Chromium by browser.mjs, against
// one or more paths; prints one JSON line per path. Part of
// loadtest/study-open/run.sh (see its README). Node's standard library only.
//
//   node replay.mjs --study UID --conns 6 --path NAME=URL [--cookie NAME=COOKIE] [--round R] [--check]
//
// The sequence (URLs, query parameters and Accept headers exactly as OHIF
// sends them):
//   1. GET /dicom-web/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060%2C00080090%2C00100030&StudyInstanceUID={study}
//      and, at once, GET /dicom-web/studies/{study}/series?includefield=00080021%2C00080031%2C0008103E%2C00200011
//      (Accept: application/dicom+json)
//   2. when the study query answered: the patient's other studies,
//      GET /dicom-web/studies?00100020={PatientID}&limit=101&offset=0&fuzzymatching=false&includefield=…
//      (an unscoped search: espace-ps refuses it by design, 403)
//   3. when the series query answered: GET /dicom-web/studies/{study}/series/{series}/metadata
//      for every series (Accept: application/dicom+json)
//   4. when the metadata answered: every frame of the largest series, in
//      InstanceNumber order, GET /dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1
//      (Accept: multipart/related; type=application/octet-stream; transfer-syntax=*)
// over at most CONNS keep-alive connections (a browser's 6 per host over
// HTTP/1.1), opened fresh for each replay. Every body is read to its end.
// Times are from the first request: "first frame" when the first frame's
// body has arrived, "last frame" when the last one has.
//
// --check: one replay per path, then checks every answer was a 200 (the
// patient search: 403 through espace-ps, 200 elsewhere) and that every
// frame's pixel data (the multipart part's body) is the same on every path.

import http from 'node:http';
import { createHash } from 'node:crypto';

function parseArgs(argv) {
  const a = { paths: [], cookies: {}, conns: 6, round: '1', check: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--check') { a.check = true; continue; }
    const v = argv[++i];
    if (k === '--study') a.study = v;
    else if (k === '--conns') a.conns = Number(v);
    else if (k === '--round') a.round = v;
    else if (k === '--path') { const [n, ...u] = v.split('='); a.paths.push({ name: n, base: u.join('=') }); }
    else if (k === '--cookie') { const [n, ...c] = v.split('='); a.cookies[n] = c.join('='); }
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.study || a.paths.length === 0) throw new Error('--study and --path are needed');
  return a;
}

const STUDY_FIELDS = 'includefield=00081030%2C00080060%2C00080090%2C00100030';
const SERIES_FIELDS = 'includefield=00080021%2C00080031%2C0008103E%2C00200011';
const JSON_ACCEPT = 'application/dicom+json';
const FRAME_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=*';

function get(agent, base, cookie, path, accept) {
  return new Promise((resolve, reject) => {
    const u = new URL(path, base);
    const headers = { accept };
    if (cookie) headers.cookie = cookie;
    const req = http.get(u, { agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'] || '', body: Buffer.concat(chunks), t: performance.now() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`timeout: ${path}`)));
  });
}

const first = (obj, tag) => obj?.[tag]?.Value?.[0];

/** The pixel data of a single-part multipart answer (its first part's body). */
function partBody(buf) {
  const start = buf.indexOf('\r\n\r\n');
  const end = buf.lastIndexOf('\r\n--');
  return start < 0 || end < start ? buf : buf.subarray(start + 4, end);
}

async function replay(p, cookie, conns, study) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const log = [];
  const t0 = performance.now();
  const call = async (kind, path, accept) => {
    const r = await get(agent, p.base, cookie, path, accept);
    log.push({ kind, path, status: r.status, bytes: r.body.length, at: r.t - t0 });
    return r;
  };
  try {
    const studyQ = call('qido-study', `/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&${STUDY_FIELDS}&StudyInstanceUID=${study}`, JSON_ACCEPT);
    const seriesQ = call('qido-series', `/dicom-web/studies/${study}/series?${SERIES_FIELDS}`, JSON_ACCEPT);
    const patientQ = studyQ.then((r) => {
      const pid = r.status === 200 ? first(JSON.parse(r.body)[0], '00100020') : null;
      return pid ? call('qido-patient', `/dicom-web/studies?00100020=${encodeURIComponent(pid)}&limit=101&offset=0&fuzzymatching=false&${STUDY_FIELDS}`, JSON_ACCEPT) : null;
    });
    const sr = await seriesQ;
    if (sr.status !== 200) throw new Error(`${p.name}: series query answered ${sr.status}`);
    const series = JSON.parse(sr.body).map((s) => first(s, '0020000E'));
    const metas = await Promise.all(series.map((s) => call('metadata', `/dicom-web/studies/${study}/series/${s}/metadata`, JSON_ACCEPT)));
    const tMeta = performance.now() - t0;
    // The displayed series: the one with the most instances.
    let best = null;
    metas.forEach((m, i) => {
      if (m.status !== 200) throw new Error(`${p.name}: metadata answered ${m.status}`);
      const inst = JSON.parse(m.body);
      if (!best || inst.length > best.inst.length) best = { uid: series[i], inst };
    });
    const frames = best.inst
      .map((o) => ({ sop: first(o, '00080018'), n: Number(first(o, '00200013') || 0) }))
      .sort((a, b) => a.n - b.n)
      .map((o) => `/dicom-web/studies/${study}/series/${best.uid}/instances/${o.sop}/frames/1`);
    const results = await Promise.all(frames.map((f) => call('frame', f, FRAME_ACCEPT)));
    await patientQ;
    const times = log.filter((e) => e.kind === 'frame').map((e) => e.at);
    const at = (kind) => log.find((e) => e.kind === kind)?.at ?? null;
    return {
      path: p.name,
      study_ms: at('qido-study'),
      series_ms: at('qido-series'),
      metadata_ms: tMeta,
      first_frame_ms: Math.min(...times),
      last_frame_ms: Math.max(...times),
      frames: results.length,
      frame_bytes: results.reduce((n, r) => n + r.body.length, 0),
      statuses: log.reduce((m, e) => { const k = `${e.kind} ${e.status}`; m[k] = (m[k] || 0) + 1; return m; }, {}),
      frame_hashes: results.map((r) => createHash('sha256').update(partBody(r.body)).digest('hex').slice(0, 16)),
      frame_types: [...new Set(results.map((r) => r.type.replace(/boundary=[^;]*/, 'boundary=…')))],
    };
  } finally {
    agent.destroy();
  }
}

const args = parseArgs(process.argv.slice(2));
const out = [];
for (const p of args.paths) {
  const r = await replay(p, args.cookies[p.name], args.conns, args.study);
  out.push(r);
  if (!args.check) {
    delete r.frame_hashes;
    process.stdout.write(`${JSON.stringify({ round: args.round, ...r })}\n`);
  }
}
if (args.check) {
  const problems = [];
  for (const r of out) {
    for (const [k, n] of Object.entries(r.statuses)) {
      const [kind, status] = k.split(' ');
      const want = kind === 'qido-patient' && r.path === 'espace-ps' ? '403' : '200';
      if (status !== want) problems.push(`${r.path}: ${n} × ${kind} answered ${status} (expected ${want})`);
    }
    if (!r.statuses['frame 200']) problems.push(`${r.path}: no frame`);
    if (JSON.stringify(r.frame_hashes) !== JSON.stringify(out[0].frame_hashes)) problems.push(`${r.path}: frames differ from ${out[0].path}'s`);
  }
  for (const r of out) delete r.frame_hashes;
  process.stdout.write(`${JSON.stringify({ ok: problems.length === 0, problems, paths: out })}\n`);
  if (problems.length) {
    for (const m of problems) console.error(m);
    process.exit(1);
  }
}
