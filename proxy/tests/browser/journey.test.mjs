// One working session of Dr Élise Martin-Dupré (GP, médecin traitant of
// SCANAP Françoise on every dossier but FEMUR, which she sees through the
// patient's whole history), in Chromium, against the
// real stack: login, search, history by venue, reports and "non vus",
// images in the viewer, access by dossier number, offline page, PWA,
// logout. The steps run in order and share one browser context, as a user
// would; each saves a full-page screenshot in artifacts/.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { useStack } from './lib/stack.mjs';
import { openBrowser, shot, login, openPatientBySearch } from './lib/browser.mjs';
import { dossierNumberOf } from './lib/records.mjs';

const ELISE = { id: '899700123450', name: 'Élise Martin-Dupré' };
const FRANCOISE = { label: 'SCANAP Françoise', birth: '13/08/1961', birthIso: '1961-08-13' };
// On none of Élise's care teams (François Kerguélen is his correspondant):
// she reaches his dossier by its number only.
const MAEL = { family: 'LE BRIS', given: 'Maël', label: 'LE BRIS Maël', birth: '14/07/1990', birthIso: '1990-07-14', act: 'IRM DU GENOU' };

let stack;
let context;
let page;

/** dd/mm/yyyy → comparable yyyymmdd. */
const sortable = (d) => d.split('/').reverse().join('');

/** The `href`s of the report links in "Derniers résultats non vus". */
async function unseenLinks(p) {
  return p.locator('#resultats-non-vus li.resultat .resultat-actions a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
}

describe('a GP’s session in the portal', { concurrency: false }, () => {
  before(async () => {
    stack = await useStack();
    context = await openBrowser(stack);
    page = context.pages()[0] || (await context.newPage());
  });

  after(async () => {
    await context?.close().catch(() => {});
    await stack?.stop();
  });

  test('1. login with Pro Santé Connect (Carte CPS)', async () => {
    await page.goto('/');
    await page.waitForURL(/\/auth\/login/);
    await assertVisibleText(page.locator('#je-me-connecte'), 'Je me connecte');
    // The help under "Je me connecte" (user guide 1.1, 1.2), closed at first.
    const help = page.locator('details#aide-connexion');
    assert.equal(await help.getAttribute('open'), null, 'the help is collapsed');
    await help.locator('summary').click();
    await assertVisibleText(help, '« Cryptolib »');
    assert.equal(await help.locator('a[href="https://youtu.be/LdCD9dCDWzM"]').count(), 1, 'the ANS video');
    await assertVisibleText(help, "l'onglet « Application e-CPS » n'est pas nécessaire");
    await shot(page, '01-login-help');
    await login(page, stack, ELISE.id, { shots: '01' });
    // The portal writes the family name in capitals (Élise MARTIN-DUPRÉ).
    await assertVisibleText(page.locator('header .utilisateur .nom'), ELISE.name, { anyCase: true });
    await assertVisibleText(page.locator('section.identite-pro'), 'RPPS 99700123450');
    await assertVisibleText(page.locator('h1#titre-recherche'), 'Rechercher un patient');
    await shot(page, '01-home');
  });

  test('2. typeahead finds SCANAP Françoise; her whole history, newest first, FEMUR included', async () => {
    await page.goto('/');
    await page.locator('#recherche').fill('sc');
    const hit = page.locator('#resultats-recherche a.patient', { hasText: FRANCOISE.label });
    await hit.first().waitFor({ timeout: 5_000 });
    const text = await hit.first().innerText();
    assert.match(text, /♀/, 'the sex symbol is shown');
    assert.match(text, /13\/08\/1961/, 'the birth date is shown');
    assert.equal(await page.locator('#resultats-recherche a.patient', { hasText: 'Jean-Baptiste' }).count(), 0,
      'SCANAP Jean-Baptiste is not her patient');
    await shot(page, '02-typeahead');

    await Promise.all([page.waitForURL(/\/portail\/patients\//), hit.first().click()]);
    await assertVisibleText(page.locator('h2#titre-imagerie'), "Résultats d'imagerie");
    await assertVisibleText(page.locator('section.entete-patient h1'), FRANCOISE.label);
    const summaries = await page.locator('details.venue > summary').allInnerTexts();
    assert.ok(summaries.includes('SCANNER CEREBRAL du 22/01/2019'), `venues: ${JSON.stringify(summaries)}`);
    assert.ok(summaries.includes("IRM DE L'ÉPAULE du 01/12/2017"), `venues: ${JSON.stringify(summaries)}`);
    const dates = summaries.map((s) => /du (\d{2}\/\d{2}\/\d{4})$/.exec(s)?.[1]);
    assert.ok(dates.every(Boolean), `every venue title ends with "du jj/mm/aaaa": ${JSON.stringify(summaries)}`);
    const sorted = [...dates].sort((a, b) => sortable(b).localeCompare(sortable(a)));
    assert.deepEqual(dates, sorted, 'venues newest first');
    // User guide 2.1: "l'ensemble de ses dossiers", FEMUR too although
    // Élise holds no role on that dossier.
    assert.ok(summaries.includes('FEMUR du 27/08/2018'), `FEMUR is listed: ${JSON.stringify(summaries)}`);
    assert.equal(summaries.length, 5, `every venue of the patient: ${JSON.stringify(summaries)}`);
    await shot(page, '02-patient');
  });

  test('3. reports: readable; opened or "marqué comme vu" leave the home list, stay reachable', async () => {
    // A venue's report, from the patient page.
    const venue = page.locator('details.venue', { has: page.locator('summary', { hasText: 'SCANNER CEREBRAL du 22/01/2019' }) });
    await venue.locator('summary').click();
    const crLink = venue.locator('ul.comptes-rendus a').first();
    await crLink.waitFor({ state: 'visible' });
    const crTitle = (await crLink.innerText()).trim();
    assert.match(crTitle, /^(CR|Compte)/, `report link title: ${crTitle}`);
    await shot(page, '03-venue-open');
    await Promise.all([page.waitForURL(/\/portail\/comptes-rendus\//), crLink.click()]);
    await assertReadableReport(page, crTitle);
    await shot(page, '03-report-from-venue');
    // "Imprimer", and on paper: patient, dossier and date; no navigation.
    const print = page.getByRole('button', { name: 'Imprimer' });
    await print.waitFor({ state: 'visible' });
    await assertVisibleText(page.locator('article.compte-rendu .liens-cr'), "Retour à l'accueil");
    await page.emulateMedia({ media: 'print' });
    try {
      assert.equal(await page.locator('header.bandeau').isVisible(), false, 'no navigation band on paper');
      assert.equal(await print.isVisible(), false, 'no button on paper');
      assert.equal(await page.locator('.liens-cr').isVisible(), false, 'no links on paper');
      await assertVisibleText(page.locator('.patient-cr'), FRANCOISE.label);
      assert.match(await page.locator('.dossier-cr').innerText(), /^Dossier n° \d+$/);
      assert.ok(await page.locator('article.compte-rendu .date').isVisible(), 'the date on paper');
      await shot(page, '03-report-print');
    } finally {
      await page.emulateMedia({ media: 'screen' });
    }

    // Home: a listed result, opened from the list, leaves it on reload.
    await page.goto('/');
    const before = await unseenLinks(page);
    const entriesBefore = await page.locator('#resultats-non-vus li.resultat').count();
    assert.ok(before.length >= 2, `at least two unseen results on the home page, got ${before.length}`);
    const recent = page.locator('#resultats-non-vus li.resultat', { hasText: FRANCOISE.label }).filter({ hasText: 'RADIOGRAPHIE DU THORAX' });
    await recent.first().waitFor();
    await shot(page, '03-home-unseen');
    const openLink = recent.first().locator('.resultat-actions a');
    const opened = await openLink.getAttribute('href');
    await Promise.all([page.waitForURL(/\/portail\/comptes-rendus\//), openLink.click()]);
    await assertReadableReport(page);
    await shot(page, '03-report-from-home');
    await page.goto('/');
    let now = await unseenLinks(page);
    assert.ok(!now.includes(opened), `${opened} is still listed after it was opened`);

    // "Marquer comme vu" on another entry: a dossier with its new
    // report(s) (user guide 3.1.1); the whole dossier leaves the list.
    const other = page.locator('#resultats-non-vus li.resultat').first();
    const otherHrefs = await other.locator('.resultat-actions a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    const otherHref = otherHrefs[0];
    const otherPatient = (await other.locator('.resultat-patient').innerText()).trim();
    // The page is already at '/': wait for the form's own navigation to
    // load (a URL wait would return at once and race the reload).
    await Promise.all([
      page.waitForEvent('load'),
      other.getByRole('button', { name: 'Marquer comme vu' }).click(),
    ]);
    await page.reload();
    now = await unseenLinks(page);
    for (const h of otherHrefs) assert.ok(!now.includes(h), `${h} is still listed after "Marquer comme vu" on its dossier`);
    // The home page lists the 20 newest dossiers: the list shrinks unless older ones fill in.
    const entriesNow = await page.locator('#resultats-non-vus li.resultat').count();
    if (entriesBefore < 20) {
      assert.equal(now.length, before.length - 1 - otherHrefs.length, 'exactly the opened report and the marked dossier left the list');
    } else {
      assert.equal(entriesNow, 20, 'the list is refilled up to 20 newest dossiers');
    }
    await shot(page, '03-home-after-seen');

    // Still reachable from the patient's page.
    const name = otherPatient.replace(/^[♀♂]\s*/, '').replace(/\s*\d{2}\/\d{2}\/\d{4}$/, '').replace(/\s+/g, ' ');
    assert.ok(name.length >= 2, `patient line: ${otherPatient}`);
    await openPatientBySearch(page, name, name);
    const again = page.locator(`details.venue a[href="${otherHref}"]`);
    assert.equal(await again.count(), 1, `${otherHref} is on the patient page of ${otherPatient}`);
    const v = page.locator('details.venue', { has: again });
    if (!(await again.isVisible())) await v.locator('summary').click();
    await Promise.all([page.waitForURL(/\/portail\/comptes-rendus\//), again.click()]);
    await assertReadableReport(page);
  });

  test('4. "Afficher les images" opens the Orthanc web viewer through the proxy', async (t) => {
    const refused = [];
    const onResponse = (r) => {
      if (r.status() >= 400 && r.url().startsWith(stack.base)) refused.push(`${r.status()} ${new URL(r.url()).pathname}`);
    };
    page.on('response', onResponse);
    await openPatientBySearch(page, 'scanap fra', FRANCOISE.label);
    const venue = page.locator('details.venue', { has: page.locator('summary', { hasText: 'SCANNER CEREBRAL du 22/01/2019' }) });
    await venue.locator('summary').click();
    const images = venue.locator('a.images', { hasText: 'Afficher les images' });
    await images.waitFor({ state: 'visible' });
    await Promise.all([page.waitForURL(/\/web-viewer\/app\/viewer\.html\?series=/, { waitUntil: 'load' }), images.click()]);
    const url = page.url();
    assert.ok(url.startsWith(`${stack.base}/web-viewer/app/viewer.html?series=`), `viewer URL through the proxy: ${url}`);
    // The Orthanc web viewer's page: its title and its canvas area.
    const title = await page.title();
    assert.match(title, /Orthanc|Viewer/i, `viewer page title: ${title}`);
    await page.locator('canvas, #dicomImage, .viewer, #viewer').first().waitFor({ state: 'attached' });
    // Let the first image arrive (bounded: the canvas has been drawn on when
    // it is not blank); the screenshot is taken either way.
    await page.waitForFunction(() => {
      const c = document.querySelector('canvas');
      return c && c.width > 0 && c.height > 0;
    }, null, { timeout: 10_000 }).catch(() => {});
    await shot(page, '04-viewer');
    page.off('response', onResponse);
    // Reported, not asserted: what the viewer asked for and was refused.
    if (refused.length) t.diagnostic(`viewer requests answered >= 400: ${JSON.stringify([...new Set(refused)])}`);
  });

  test('5. "Utiliser un n° de dossier" in place: French error that names no field; right date opens that dossier only; "Mes dernières recherches" links to it', async (t) => {
    // LE BRIS Maël: on none of her care teams (SCANAP Françoise's FEMUR,
    // used here before issue 11, is now hers through the whole history).
    const numero = dossierNumberOf(stack.dataDir, MAEL.family, MAEL.given, MAEL.birthIso, MAEL.act);
    await page.goto('/');
    const toggle = page.locator('#utiliser-numero');
    assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
    assert.equal(await page.locator('#carte-numero').isVisible(), false, 'the fields are hidden at first');
    await toggle.click();
    const card = page.locator('#carte-numero');
    await card.waitFor({ state: 'visible' });
    assert.equal(new URL(page.url()).pathname, '/', 'the fields open in place (user guide 2.2)');
    assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'numero-dossier', 'focus on the number field');
    await assertVisibleText(card.locator('label[for=numero-dossier]'), 'Numéro de dossier *');
    await assertVisibleText(card.locator('label[for=date-naissance]'), 'Date de naissance du patient *');
    assert.equal(await card.locator('#date-naissance').getAttribute('placeholder'), 'jj/mm/aaaa');
    await shot(page, '05-dossier-card');

    const attempt = async (n, date) => {
      await page.locator('#numero-dossier').fill(n);
      await page.locator('#date-naissance').fill(date);
      await Promise.all([page.waitForLoadState('load'), page.waitForResponse((r) => r.request().method() === 'POST'),
        page.getByRole('button', { name: 'Accéder au dossier' }).click()]);
    };
    await attempt(numero, '15/07/1990');
    const wrongDate = (await page.locator('#erreur-dossier').innerText()).trim();
    assert.match(wrongDate, /Aucun dossier ne correspond/, `error: ${wrongDate}`);
    assert.doesNotMatch(wrongDate, /(numéro|date)[^.]*(incorrect|invalide|erron|inconnu|faux)/i, 'the error must not say which field is wrong');
    await shot(page, '05-dossier-wrong-date');
    // A wrong number with the right date gives the very same message.
    await attempt('20180009999', MAEL.birth);
    assert.equal((await page.locator('#erreur-dossier').innerText()).trim(), wrongDate, 'same message for a wrong number');

    await page.locator('#numero-dossier').fill(numero);
    await page.locator('#date-naissance').fill(MAEL.birth);
    await Promise.all([page.waitForURL(new RegExp(`/portail/dossiers/${numero}$`)), page.getByRole('button', { name: 'Accéder au dossier' }).click()]);
    await assertVisibleText(page.locator('section.entete-patient h1'), MAEL.label);
    const summaries = await page.locator('details.venue > summary').allInnerTexts();
    assert.equal(summaries.length, 1, `only the dossier opened by number: ${JSON.stringify(summaries)}`);
    assert.match(summaries[0], /^IRM DU GENOU du \d{2}\/\d{2}\/\d{4}$/);
    await assertVisibleText(page.locator('section.entete-patient .aide'), 'seul ce dossier est accessible');
    await shot(page, '05-dossier-by-number');

    // "Mes dernières recherches": the entry links to that dossier.
    await page.goto('/');
    const entry = page.locator('#dernieres-recherches a.patient', { hasText: MAEL.label });
    await entry.first().waitFor();
    assert.equal(await entry.first().getAttribute('href'), `/portail/dossiers/${numero}`);
    await Promise.all([page.waitForURL(new RegExp(`/portail/dossiers/${numero}$`)), entry.first().click()]);
    await assertVisibleText(page.locator('section.entete-patient h1'), MAEL.label);

    // The grant never lists the patient in a name search (user guide 2.2);
    // the no-result message opens the same fields in place.
    await page.goto('/');
    await page.locator('#recherche').fill('le bris maël');
    const status = page.locator('#recherche-statut', { hasText: 'Aucun patient' });
    await status.waitFor();
    assert.equal(await page.locator('#resultats-recherche a.patient', { hasText: MAEL.label }).count(), 0,
      'a dossier-number grant does not make the patient findable by name');
    await status.getByRole('link', { name: 'Utiliser un n° de dossier' }).click();
    await page.locator('#carte-numero').waitFor({ state: 'visible' });
    assert.equal(new URL(page.url()).pathname, '/');
    t.diagnostic('LE BRIS Maël not found by name after the grant; the no-result link opened the card');
    await shot(page, '05-search-after-grant');
  });

  test('7. offline: the offline page with "Mes dernières recherches"', async () => {
    await openPatientBySearch(page, 'scanap', FRANCOISE.label);
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
    // The worker precaches the offline page before it activates.
    await page.waitForFunction(async () => {
      const r = await navigator.serviceWorker.ready;
      return r.active && r.active.state === 'activated';
    }, null, { polling: 100 });
    const recent = await page.evaluate(() => localStorage.getItem('espace-ps:recent'));
    assert.ok(recent && recent.includes('SCANAP'), `espace-ps:recent: ${recent}`);

    await context.setOffline(true);
    try {
      await page.goto('/');
      await assertVisibleText(page.locator('h1#titre-hors-ligne'), 'Vous êtes hors ligne');
      const list = page.locator('#dernieres-recherches ul.liste-patients a.patient', { hasText: FRANCOISE.label });
      await list.first().waitFor();
      assert.match(await list.first().innerText(), /13\/08\/1961/);
      assert.equal(await page.locator('#aucune-recherche').isVisible(), false, '"Aucune recherche" is hidden');
      await shot(page, '07-offline');
    } finally {
      await context.setOffline(false);
    }
  });

  test('8. installable: manifest, icons, worker controlling the page', async () => {
    await page.goto('/');
    const manifestHref = await page.locator('link[rel=manifest]').getAttribute('href');
    assert.equal(manifestHref, '/manifest.webmanifest');
    const res = await page.request.get(manifestHref);
    assert.equal(res.status(), 200);
    const m = await res.json();
    for (const k of ['name', 'short_name', 'start_url']) assert.ok(m[k], `manifest.${k}`);
    assert.equal(m.display, 'standalone');
    for (const size of ['192x192', '512x512']) {
      const icon = (m.icons || []).find((i) => String(i.sizes).split(/\s+/).includes(size));
      assert.ok(icon, `an icon ${size}`);
      const r = await page.request.get(icon.src);
      assert.equal(r.status(), 200, `${icon.src}`);
      assert.match(r.headers()['content-type'] || '', /^image\/png/, `${icon.src} content-type`);
    }
    await page.reload();
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { polling: 100 });

    const cdp = await context.newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    assert.deepEqual(installabilityErrors, [], `installability errors: ${JSON.stringify(installabilityErrors)}`);
    await cdp.detach();
    await shot(page, '08-home-installable');
    // "Installer l'application" (user guide 1.3): shown when the browser
    // offers the installation (beforeinstallprompt; the page is installable,
    // so Chromium may already have fired it: the server sends it hidden). A
    // synthetic event stands in for the browser's, so that the click does
    // not open Chromium's real dialog.
    const hint = page.locator('#installer-app');
    await page.evaluate(() => {
      const ev = new Event('beforeinstallprompt', { cancelable: true });
      ev.prompt = async () => { window.__promptShown = true; };
      window.dispatchEvent(ev);
    });
    await hint.waitFor({ state: 'visible' });
    await hint.getByRole('button', { name: "Installer l'application" }).click();
    assert.equal(await page.evaluate(() => window.__promptShown === true), true, "the browser's installation prompt");
    assert.equal(await hint.isVisible(), false, 'the hint goes once used');
  });

  test('9. logout: PSC end-session, storage cleared, portal closed', async () => {
    await page.goto('/');
    assert.ok(await page.evaluate(() => localStorage.getItem('espace-ps:recent')), 'a recent list before logout');
    const visited = [];
    // Navigation requests, redirects included (the IdP hop is a redirect).
    const onNav = (r) => { if (r.isNavigationRequest() && r.frame() === page.mainFrame()) visited.push(r.url()); };
    page.on('request', onNav);
    await page.getByRole('button', { name: 'Se déconnecter' }).click();
    await page.getByText('Vous êtes déconnecté(e)', { exact: false }).first().waitFor({ timeout: 15_000 });
    page.off('request', onNav);
    const idpOrigin = new URL(stack.idp || 'http://invalid').origin;
    assert.ok(visited.some((u) => new URL(u).origin === idpOrigin),
      `the logout went through the identity provider's end-session: ${JSON.stringify(visited)}`);
    await shot(page, '09-logged-out');
    assert.equal(await page.evaluate(() => localStorage.getItem('espace-ps:recent')), null, 'espace-ps:recent removed');
    await page.goto('/');
    await page.waitForURL(/\/auth\/login/);
    await assertVisibleText(page.locator('#je-me-connecte'), 'Je me connecte');
    await shot(page, '09-login-again');
  });
});

async function assertVisibleText(locator, text, { anyCase = false } = {}) {
  await locator.first().waitFor({ state: 'visible' });
  const got = (await locator.first().innerText()).replace(/\s+/g, ' ').trim();
  const norm = (x) => (anyCase ? x.toLocaleUpperCase('fr') : x);
  assert.ok(norm(got).includes(norm(text)), `expected "${text}" in "${got}"`);
}

/** A report page a doctor can read: title, date line, text. */
async function assertReadableReport(p, title) {
  const h1 = p.locator('article.compte-rendu h1');
  await h1.waitFor({ state: 'visible' });
  if (title) assert.equal((await h1.innerText()).trim(), title);
  assert.match(await p.locator('article.compte-rendu .date').innerText(), /^Compte rendu du \d{2}\/\d{2}\/\d{4}$/);
  const paragraphs = await p.locator('article.compte-rendu > p:not(.date):not(.patient-cr)').allInnerTexts();
  assert.ok(paragraphs.join(' ').length > 40, `report text: ${JSON.stringify(paragraphs)}`);
}
