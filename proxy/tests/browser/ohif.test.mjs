// OHIF v3, the softviewer, behind espace-ps (issue 12): its own stack,
// started with `--ohif-dir` (route table `ohif`, Orthanc's DICOMweb plugin
// as the archive, OHIF's static site served by espace-ps under
// /visionneuse/), whatever stack the other files share.
//
// 1. Dr Élise Martin-Dupré (GP) clicks "Afficher les images" for her
//    patient's CT: OHIF opens at /visionneuse/viewer?StudyInstanceUIDs=…
//    and RENDERS it: the marker the DICOM generator draws at the centre of
//    every image (a white square ring around a black core,
//    proxy/dicomgen/src/image.rs) is found in the viewport's pixels; no
//    Content-Security-Policy violation on the way (page and workers).
// 2. The study of a dossier she has no access to (SCANAP Jean-Baptiste's,
//    on none of her care teams), typed into the URL: OHIF
//    shows no image, every DICOMweb call naming it was answered 403, none
//    2xx, and the audit trail holds refusals for that study and no success.
//
// The OHIF site: ESPACE_BROWSER_OHIF_DIR (scripts/test.sh installs it), or
// deploy/ohif/install.sh into ~/.cache/espace-ps/ohif-site (npm download
// of @ohif/app the first time).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { homedir } from 'node:os';
import path from 'node:path';
import { startStack, ROOT } from './lib/stack.mjs';
import { openBrowser, shot, login, openPatientBySearch } from './lib/browser.mjs';
import { recordsQuery } from './lib/records.mjs';

const ELISE = { id: '899700123450' };
const FRANCOISE = { label: 'SCANAP Françoise', birthIso: '1961-08-13' };
const CT_VENUE = 'SCANNER CEREBRAL du 22/01/2019';

function ohifDir() {
  if (process.env.ESPACE_BROWSER_OHIF_DIR) return process.env.ESPACE_BROWSER_OHIF_DIR;
  const dir = path.join(homedir(), '.cache', 'espace-ps', 'ohif-site');
  execFileSync(path.join(ROOT, 'deploy/ohif/install.sh'), [dir], { stdio: 'inherit', timeout: 300_000 });
  return dir;
}

function auditRows(dataDir, uid) {
  const db = path.join(dataDir, 'espace-ps.sqlite');
  const q = `SELECT event, outcome, detail FROM audit_events WHERE resource = '${uid.replace(/'/g, "''")}'`;
  const out = execFileSync('sqlite3', ['-readonly', '-separator', '|', db, q], { encoding: 'utf8', timeout: 10_000 });
  return out.split('\n').filter(Boolean).map((l) => l.split('|'));
}

/**
 * In the page: looks for the generator's marker in every 2D canvas of the
 * OHIF viewports. From the canvas centre, along the four directions: a
 * black core, then a white ring twice as far out as the core's edge (8/4
 * image pixels), whatever the zoom. Returns a description, or null.
 */
function findMarker() {
  const lum = (d, i) => 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
  for (const c of document.querySelectorAll('canvas')) {
    if (c.width < 64 || c.height < 64) continue;
    let ctx;
    try {
      ctx = c.getContext('2d', { willReadFrequently: true });
    } catch {
      ctx = null;
    }
    if (!ctx) continue;
    const { width: w, height: h } = c;
    const data = ctx.getImageData(0, 0, w, h).data;
    const at = (x, y) => lum(data, (y * w + x) * 4);
    const cx = Math.floor(w / 2);
    const cy = Math.floor(h / 2);
    if (at(cx, cy) > 60) continue;
    const ok = [[1, 0], [-1, 0], [0, 1], [0, -1]].every(([dx, dy]) => {
      let r = 0;
      const max = Math.min(w, h) / 2 - 1;
      while (r < max && at(cx + dx * r, cy + dy * r) <= 60) r++; // black core
      const inner = r;
      while (r < max && at(cx + dx * r, cy + dy * r) > 60 && at(cx + dx * r, cy + dy * r) < 200) r++; // edge blur
      const ringStart = r;
      while (r < max && at(cx + dx * r, cy + dy * r) >= 200) r++; // white ring
      const outer = r;
      // core half-width 4, ring 4 more: outer ≈ 2 × inner (blur: ±40 %)
      return inner >= 2 && outer - ringStart >= 2 && outer / inner > 1.4 && outer / inner < 2.8;
    });
    if (ok) return `canvas ${w}x${h}`;
  }
  return null;
}

describe('OHIF v3 behind espace-ps', { concurrency: false }, () => {
  let stack;
  let context;
  let page;
  const csp = [];
  const responses = [];

  before(async () => {
    stack = await startStack({ ohifDir: ohifDir() });
    context = await openBrowser(stack);
    // Violations of the page's policy (the document) and of the workers'.
    await context.addInitScript(() => {
      self.addEventListener('securitypolicyviolation', (e) =>
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
    });
    page = await context.newPage();
    const onConsole = (m) => {
      if (/Content Security Policy|CSP violation/i.test(m.text())) csp.push(m.text());
    };
    page.on('console', onConsole);
    page.on('worker', (w) => w.on('console', onConsole));
    page.on('response', (r) => {
      if (r.url().startsWith(stack.base)) responses.push({ status: r.status(), url: r.url() });
    });
  });

  after(async () => {
    await context?.close();
    await stack?.stop();
  });

  test('1. "Afficher les images" opens OHIF, which renders the study (marker found), no CSP violation', async () => {
    await login(page, stack, ELISE.id);
    await openPatientBySearch(page, 'scanap fra', FRANCOISE.label);
    const venue = page.locator('details.venue', { has: page.locator('summary', { hasText: CT_VENUE }) });
    await venue.locator('summary').click();
    const images = venue.locator('a.images', { hasText: 'Afficher les images' });
    await images.waitFor({ state: 'visible' });
    await Promise.all([page.waitForURL(/\/visionneuse\/viewer\?StudyInstanceUIDs=/), images.click()]);
    const uid = new URL(page.url()).searchParams.get('StudyInstanceUIDs');
    assert.match(uid, /^[0-9.]+$/);
    // The portal's banner and PWA manifest are injected into OHIF's page
    // as into the other viewer's; OHIF's own manifest is gone.
    await page.locator('#espace-ps-bandeau a', { hasText: 'Retour au portail' }).waitFor();
    assert.deepEqual(
      await page.locator('link[rel=manifest]').evaluateAll((ls) => ls.map((l) => l.getAttribute('href'))),
      ['/manifest.webmanifest'],
    );
    let found = null;
    await page.waitForFunction(findMarker, null, { timeout: 60_000, polling: 250 }).then(async (h) => {
      found = await h.jsonValue();
    }).catch(() => {});
    await shot(page, 'ohif-01-study');
    assert.ok(found, 'the generator\'s marker in a viewport of OHIF (screenshot: artifacts/ohif-01-study.png)');
    // Every DICOMweb call OHIF made for it went through and was about it.
    const dicomweb = responses.filter((r) => new URL(r.url).pathname.startsWith('/dicom-web/'));
    assert.ok(dicomweb.length > 0, 'OHIF asked espace-ps\'s DICOMweb routes');
    // OHIF's study browser also searches the patient's other studies by
    // PatientID: an unscoped search, refused by design (the route table
    // decides per study). Nothing else may be refused.
    const patientSearch = (r) => /^\/dicom-web\/studies$/.test(new URL(r.url).pathname) && new URL(r.url).searchParams.has('00100020');
    assert.deepEqual(dicomweb.filter((r) => r.status >= 400 && !patientSearch(r)), [], 'no DICOMweb call of the allowed study refused');
    assert.ok(dicomweb.some((r) => r.status === 200 && r.url.includes(uid)), 'the study was read through espace-ps');
    assert.deepEqual(csp, [], 'no Content-Security-Policy violation');
    // No service worker of OHIF's registered on the portal's origin.
    const workers = await page.evaluate(async () =>
      (await navigator.serviceWorker.getRegistrations()).map((r) => r.active?.scriptURL || r.installing?.scriptURL));
    assert.ok(workers.every((u) => !u || !u.includes('/visionneuse/')), `service workers: ${workers}`);
  });

  test('2. a study of a dossier she may not open, typed into the URL: no image, every DICOMweb call refused and audited', async () => {
    // SCANAP Jean-Baptiste's study: on none of her care teams. (Her own
    // patient's FEMUR dossier, used here before issue 11, is hers to view
    // through the patient's whole history.)
    const rows = recordsQuery(stack.dataDir,
      `SELECT e.study_instance_uid FROM rec_exams e JOIN rec_dossiers d ON d.dossier_number = e.dossier_number
       WHERE d.patient_id = '10000002' AND e.study_instance_uid IS NOT NULL ORDER BY e.study_instance_uid`);
    assert.ok(rows.length >= 1, "SCANAP Jean-Baptiste's dossier has a study");
    const uid = rows[0][0];
    responses.length = 0;
    await page.goto(`/visionneuse/viewer?StudyInstanceUIDs=${uid}`);
    // Wait until OHIF asked for it and was refused.
    const forStudy = () => responses.filter((r) => new URL(r.url).pathname.startsWith('/dicom-web/') && r.url.includes(uid));
    await page.waitForFunction(() => true);
    const deadline = Date.now() + 30_000;
    while (forStudy().length === 0 && Date.now() < deadline) {
      await page.waitForEvent('response', { timeout: 30_000 }).catch(() => {});
    }
    await page.waitForLoadState('networkidle').catch(() => {});
    await shot(page, 'ohif-02-refused');
    const calls = forStudy();
    assert.ok(calls.length > 0, 'OHIF asked for the typed study');
    assert.deepEqual(calls.filter((r) => r.status !== 403), [], 'every DICOMweb call for it refused (403)');
    assert.equal(await page.evaluate(findMarker), null, 'no image of it shown');
    const audit = auditRows(stack.dataDir, uid);
    assert.ok(audit.some(([, outcome]) => outcome === 'refused'), `refusals audited: ${JSON.stringify(audit)}`);
    assert.deepEqual(audit.filter(([, outcome]) => outcome !== 'refused'), [], 'no success audited for it');
  });
});
