// The viewer pages run on the portal's origin, under the route table's
// Content-Security-Policy (policies/viewers/orthanc.toml, [csp]).
//
// A series whose SeriesDescription holds an HTML payload is added to one of
// SCANAP Françoise's studies (in Orthanc directly: test setup), and Dr
// Élise Martin-Dupré opens it in the Orthanc web viewer through espace-ps.
//
// What this proves, honestly: the Orthanc Web Viewer 2.8 writes the tags it
// shows with jQuery's `text:` (escaped), so the payload would not run there
// even without a policy. The test therefore also plays a viewer that does
// render a tag as HTML: in the real page, under the real policy, it writes
// the SeriesDescription the viewer received into the DOM with innerHTML
// (the classic sink). Without the CSP the payload's onerror= runs and sets
// a global (the test fails); with it, the handler is blocked and a
// `securitypolicyviolation` is reported. It also checks that the policy
// does not break the viewer (image drawn, no violation from the viewer's own
// code) and that the nonce of the header is the one on what espace-ps
// injects, fresh per response.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useStack } from './lib/stack.mjs';
import { openBrowser, shot, login, openPatientBySearch } from './lib/browser.mjs';

const ELISE = { id: '899700123450' };
const FRANCOISE = { label: 'SCANAP Françoise' };
const VENUE = "IRM DE L'ÉPAULE du 01/12/2017";
// Sets a global when it runs; VR LO: at most 64 characters.
const PAYLOAD = '<img src=x onerror="window.__xssRan=1">';

let stack;
let context;
let page;
let addedSeries;

/** A 64×64 grayscale PNG (a gradient), for Orthanc's /tools/create-dicom. */
async function pngDataUrl() {
  const { deflateSync, crc32 } = await import('node:zlib');
  const w = 64;
  const h = 64;
  const rows = [];
  for (let y = 0; y < h; y += 1) {
    const row = Buffer.alloc(w + 1);
    for (let x = 0; x < w; x += 1) row[x + 1] = ((x * 4) ^ (y * 4)) & 255;
    rows.push(row);
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth, then color type 0 (gray), compression, filter, interlace
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  return `data:image/png;base64,${png.toString('base64')}`;
}

async function orthancJson(pathAndQuery, init) {
  const res = await fetch(`${stack.orthanc}${pathAndQuery}`, { signal: AbortSignal.timeout(20_000), ...init });
  assert.ok(res.ok, `Orthanc ${init?.method || 'GET'} ${pathAndQuery}: ${res.status}`);
  return res.json();
}

/** The CSP nonce of a header value, asserting there is one in script-src and style-src. */
function nonceOf(csp) {
  const script = /(?:^|;\s*)script-src [^;]*'nonce-([A-Za-z0-9+/=_-]+)'/.exec(csp);
  const style = /(?:^|;\s*)style-src [^;]*'nonce-([A-Za-z0-9+/=_-]+)'/.exec(csp);
  assert.ok(script && style, `a nonce in script-src and style-src: ${csp}`);
  assert.equal(script[1], style[1], 'one nonce per response');
  return script[1];
}

before(async () => {
  stack = await useStack();
  assert.ok(stack.orthanc, 'the Orthanc URL of the stack (ESPACE_BROWSER_ORTHANC_URL in wrapper mode)');
  context = await openBrowser(stack);
  page = context.pages()[0] || (await context.newPage());
});

after(async () => {
  if (addedSeries) await fetch(`${stack.orthanc}/series/${addedSeries}`, { method: 'DELETE' }).catch(() => {});
  await context?.close().catch(() => {});
  await stack?.stop();
});

test('10. a script in a DICOM tag does not run in the viewer; the policy does not break it', async () => {
  await login(page, stack, ELISE.id);
  await openPatientBySearch(page, 'scanap fra', FRANCOISE.label);
  const venue = page.locator('details.venue', { has: page.locator('summary', { hasText: VENUE }) });
  await venue.locator('summary').click();
  const images = venue.locator('a.images', { hasText: 'Afficher les images' });
  await images.waitFor({ state: 'visible' });
  // /portail/images/{StudyInstanceUID}: redirects to the viewer.
  const href = await images.getAttribute('href');
  const studyUid = /\/portail\/images\/([0-9.]+)$/.exec(href)?.[1];
  assert.ok(studyUid, `the images link names a study: ${href}`);

  // Setup, in Orthanc directly: a new series in the same (allowed) study,
  // its SeriesDescription the payload.
  const found = await orthancJson('/tools/lookup', { method: 'POST', body: studyUid });
  const study = found.find((r) => r.Type === 'Study')?.ID;
  assert.ok(study, `Orthanc has the study: ${JSON.stringify(found)}`);
  const created = await orthancJson('/tools/create-dicom', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      Parent: study,
      Tags: { Modality: 'OT', SeriesDescription: PAYLOAD },
      Content: await pngDataUrl(),
    }),
  });
  addedSeries = created.ParentSeries;
  assert.ok(addedSeries, `Orthanc created the series: ${JSON.stringify(created)}`);

  // Violations are collected from the first byte of the page on.
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
    });
  });
  const viewerUrl = `/web-viewer/app/viewer.html?series=${addedSeries}`;
  const resp = await page.goto(viewerUrl, { waitUntil: 'load' });
  assert.equal(resp.status(), 200, 'the viewer page through espace-ps');
  const csp = resp.headers()['content-security-policy'];
  assert.ok(csp, 'a Content-Security-Policy on the viewer page');
  for (const d of ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'self'"]) {
    assert.ok(csp.includes(d), `${d} in ${csp}`);
  }
  assert.doesNotMatch(csp, /'unsafe-inline'/, 'no unsafe-inline for scripts or styles');
  const nonce = nonceOf(csp);
  // The elements espace-ps injected carry that nonce.
  const injected = await page.evaluate(() => [...document.querySelectorAll('style, link[rel=manifest], script:not([src])')]
    .filter((e) => e.matches('link[rel=manifest]') || e.textContent.includes('espace-ps') || e.nonce)
    .map((e) => ({ tag: e.tagName, nonce: e.nonce })));
  assert.ok(injected.length >= 2, `espace-ps's elements are in the page: ${JSON.stringify(injected)}`);
  for (const e of injected) assert.equal(e.nonce, nonce, `${e.tag} carries the response's nonce`);
  // The portal banner's style applied (its <style> was allowed by the nonce).
  const bannerPosition = await page.locator('#espace-ps-bandeau').evaluate((e) => getComputedStyle(e).position);
  assert.equal(bannerPosition, 'fixed', 'the injected style applies under the policy');

  // The viewer works under its policy: the image is drawn, and the
  // viewer's own code caused no violation.
  await page.waitForFunction(() => {
    const c = document.querySelector('canvas');
    if (!c || !c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) return true;
    return false;
  }, null, { timeout: 15_000 });
  // The tag reached the page (as text) and its handler did not run.
  await page.locator('#topright', { hasText: PAYLOAD }).waitFor();
  assert.deepEqual(await page.evaluate(() => window.__violations), [], 'no violation from the viewer itself');
  assert.equal(await page.evaluate(() => window.__xssRan), undefined);
  await shot(page, '10-viewer-csp');

  // A viewer that renders the tag as HTML: the SeriesDescription as the
  // viewer received it, through innerHTML.
  const outcome = await page.evaluate(async (series) => {
    const volume = await (await fetch(`../series/${series}`)).json();
    const violated = new Promise((resolve) => {
      document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
    });
    const ranOrBlocked = new Promise((resolve) => {
      const div = document.createElement('div');
      div.innerHTML = volume.SeriesDescription;
      document.body.appendChild(div);
      const img = div.querySelector('img');
      // The error event fires whether or not the inline handler may run;
      // the handler (if allowed) runs before this listener.
      img.addEventListener('error', () => setTimeout(() => resolve(window.__xssRan ?? 'blocked'), 0));
    });
    const result = await ranOrBlocked;
    const directive = await Promise.race([violated, new Promise((r) => setTimeout(() => r('none'), 2_000))]);
    // A deliberate inline <script> without the nonce: blocked too.
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = 1';
    document.body.appendChild(s);
    return { description: volume.SeriesDescription, result, directive, inlineRan: window.__inlineRan };
  }, addedSeries);
  assert.equal(outcome.description, PAYLOAD, 'the viewer received the tag unchanged');
  assert.equal(outcome.result, 'blocked', 'the onerror handler of the tag did not run');
  assert.equal(outcome.directive, 'script-src-attr', 'the browser reports the blocked handler');
  assert.equal(outcome.inlineRan, undefined, 'an inline script without the nonce does not run');
  const violations = await page.evaluate(() => window.__violations.map((v) => v.directive));
  assert.ok(violations.includes('script-src-elem'), `the inline script is reported: ${JSON.stringify(violations)}`);

  // A fresh nonce per response.
  const again = await page.request.get(viewerUrl);
  const csp2 = again.headers()['content-security-policy'];
  const nonce2 = nonceOf(csp2);
  assert.notEqual(nonce2, nonce, 'a new nonce for each response');
  assert.ok((await again.text()).includes(`nonce="${nonce2}"`), 'the page carries its own response\'s nonce');
});
