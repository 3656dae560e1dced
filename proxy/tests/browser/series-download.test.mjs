// "Télécharger la série (DICOM)" (user guide 3.1.3; issue 11, item 5), in
// Chromium against the real demo stack. SCANAP Françoise's SCANNER
// CEREBRAL, on the care team of both doctors:
//   - Dr Hervé Lefèvre (radiologue) holds the download habilitation in the
//     demo (proxy/demo/demo-groups.toml): the viewer's banner offers the
//     series, the click downloads a ZIP of DICOM files, and the audit trail
//     records the download with the study and the series;
//   - Dr Élise Martin-Dupré does not: no such button, and the same URL is
//     refused with the "Téléchargement non autorisé" page (and audited).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { useStack } from './lib/stack.mjs';
import { openBrowser, shot, login } from './lib/browser.mjs';
import { dossierNumberOf, recordsQuery } from './lib/records.mjs';

const HERVE = '899700234562';
const ELISE = '899700123450';
const FRANCOISE = ['SCANAP', 'Françoise', '1961-08-13'];

let stack;
let dossier;
let studyUid;
let seriesHref;

/** The audit rows of a professional's DICOM downloads, newest first. */
function downloads(actor) {
  const db = path.join(stack.dataDir, 'espace-ps.sqlite');
  const out = execFileSync('sqlite3', ['-readonly', '-separator', '|', db,
    `SELECT outcome, resource, detail FROM audit_events
     WHERE event = 'dicom_download' AND actor = '${actor}' ORDER BY id DESC`], { encoding: 'utf8', timeout: 10_000 });
  return out.split('\n').filter(Boolean).map((l) => l.split('|'));
}

/** Signs in, opens the SCANNER CEREBRAL dossier and its images. */
async function openViewer(stack, nationalId) {
  const context = await openBrowser(stack);
  const page = context.pages()[0] || (await context.newPage());
  await login(page, stack, nationalId);
  await page.goto(`/portail/dossiers/${encodeURIComponent(dossier)}`);
  const images = page.locator('a.images', { hasText: 'Afficher les images' }).first();
  await images.waitFor({ state: 'visible' });
  await Promise.all([page.waitForURL(/\/web-viewer\/app\/viewer\.html\?series=/, { waitUntil: 'load' }), images.click()]);
  await page.locator('#espace-ps-bandeau').waitFor();
  return { context, page };
}

describe('downloading a series in DICOM', { concurrency: false }, () => {
  before(async () => {
    stack = await useStack();
    dossier = dossierNumberOf(stack.dataDir, ...FRANCOISE, 'SCANNER CEREBRAL');
    [[studyUid]] = recordsQuery(stack.dataDir,
      `SELECT study_instance_uid FROM rec_exams WHERE dossier_number = '${dossier}' AND study_instance_uid IS NOT NULL`);
  });

  after(async () => {
    await stack?.stop();
  });

  test('12. Dr Lefèvre (habilitated) downloads the series as a ZIP of DICOM files', async () => {
    const { context, page } = await openViewer(stack, HERVE);
    try {
      const banner = page.locator('#espace-ps-bandeau');
      // One series: a link; several: a list under the same title.
      const list = banner.locator('details#espace-ps-series');
      if (await list.count()) await list.locator('summary', { hasText: 'Télécharger la série (DICOM)' }).click();
      else await banner.getByText('Télécharger la série (DICOM)').waitFor();
      const link = banner.locator('a.espace-ps-telecharger').first();
      await link.waitFor({ state: 'visible' });
      seriesHref = await link.getAttribute('href');
      assert.match(seriesHref, /^\/series\/[0-9a-f-]{44}\/archive$/, `the link: ${seriesHref}`);
      await shot(page, '12-viewer-download');

      const before = downloads(HERVE).length;
      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      const file = path.join(stack.dataDir, 'serie-telechargee.zip');
      await download.saveAs(file);
      assert.equal(await download.failure(), null, 'the download completed');
      // A ZIP whose entries are DICOM Part-10 files ("DICM" at offset 128).
      const check = execFileSync('python3', ['-c', `
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
files = [i for i in z.infolist() if not i.is_dir()]
dicom = sum(1 for i in files if z.read(i)[128:132] == b"DICM")
print(len(files), dicom)`, file], { encoding: 'utf8' }).trim().split(' ').map(Number);
      assert.ok(check[0] >= 1 && check[0] === check[1], `ZIP entries, of which DICOM: ${check}`);

      // The trail: one more download, on the study, naming the series.
      const rows = downloads(HERVE);
      assert.equal(rows.length, before + 1, JSON.stringify(rows));
      const [outcome, resource, detail] = rows[0];
      assert.equal(outcome, 'success');
      assert.equal(resource, studyUid);
      assert.match(detail, /^rest-archive series=[0-9.]+$/, `audit detail: ${detail}`);
    } finally {
      await context.close().catch(() => {});
    }
  });

  test('13. Dr Martin-Dupré (not habilitated): no button, and the URL is refused', async () => {
    assert.ok(seriesHref, 'scenario 12 found the series link');
    const { context, page } = await openViewer(stack, ELISE);
    try {
      const banner = page.locator('#espace-ps-bandeau');
      await banner.getByText('Retour au portail').waitFor();
      assert.equal(await banner.getByText('Télécharger la série (DICOM)').count(), 0, 'no download button');
      assert.equal(await page.locator('a.espace-ps-telecharger').count(), 0);

      const before = downloads(ELISE).length;
      const response = await page.goto(seriesHref);
      assert.equal(response.status(), 403);
      await page.locator('h1', { hasText: 'Téléchargement non autorisé' }).waitFor();
      await shot(page, '13-download-refused');
      const rows = downloads(ELISE);
      assert.equal(rows.length, before + 1, JSON.stringify(rows));
      assert.deepEqual(rows[0].slice(0, 2), ['refused', studyUid]);
    } finally {
      await context.close().catch(() => {});
    }
  });
});
