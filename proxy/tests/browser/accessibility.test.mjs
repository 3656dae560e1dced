// Accessibility of every portal screen (WCAG 2.1 AA; usable from 360 px
// wide): axe-core with the wcag2a, wcag2aa, wcag21a and wcag21aa rules
// (and axe's best-practice ones: landmarks, heading order), at desktop
// width (1280x900) and on a phone (360x740); any violation fails, with its
// rule id, impact and target selectors. At 360 px (and at 320 px, WCAG
// 1.4.10 Reflow) the page must not scroll sideways. A keyboard walk: Tab
// reaches the search field and the logout control, and every control on
// the way shows a focus indicator (outline or box-shadow on :focus-visible).
//
// Dr Hervé Lefèvre (radiologist) is the user: no other scenario signs in
// as him, so marking his results as seen (opening a report) and locking
// his dossier-number access change nothing for them. The dev identity
// provider's own pages (its sign-in and end-session pages) are not the
// portal's and are not audited.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { useStack } from './lib/stack.mjs';
import { openBrowser, shot, login, openPatientBySearch } from './lib/browser.mjs';
import { recordsQuery } from './lib/records.mjs';
import {
  AXE_VERSION, DESKTOP, PHONE, REFLOW, WCAG_TAGS, EXTRA_TAGS,
  runAxe, formatViolations, horizontalOverflow, tabThrough, describeFocus,
} from './lib/a11y.mjs';

const HERVE = { id: '899700234562', name: 'Hervé Lefèvre' };
const FRANCOISE = { label: 'SCANAP Françoise' };
const MAX_FAILURES = 5; // portal.dossier_attempts_max, default
// A dossier number that exists nowhere: every attempt fails, and only
// Hervé's own failure count grows (the per-number count is for this
// number alone, which no other scenario types).
const NO_SUCH_DOSSIER = '99990000042';

let stack;
let context;
let page;

/**
 * Audits the screen on display at both widths: axe (any violation fails),
 * and at 360 px (then 320 px) no horizontal scroll. The screen is not
 * reloaded between the widths (a form's answer stays on screen); the
 * layout follows the viewport. Full-page screenshots:
 * artifacts/a11y-NAME-{desktop,360}.png.
 */
async function auditScreen(t, name) {
  const problems = [];
  try {
    for (const [label, size] of [['desktop 1280x900', DESKTOP], ['360x740', PHONE]]) {
      await page.setViewportSize(size);
      const r = await runAxe(page);
      if (r.violations.length) {
        const count = r.violations.reduce((n, v) => n + v.nodes.length, 0);
        problems.push(`${label}: ${r.violations.length} axe rule(s) violated, ${count} element(s):\n${formatViolations(r.violations)}`);
      }
      const review = r.incomplete.map((v) => `${v.id} (${v.nodes.length})`);
      t.diagnostic(`${name}, ${label}: ${r.passes} rules passed, ${r.violations.length} violated` +
        (review.length ? `; for a person to review (axe could not decide): ${review.join(', ')}` : ''));
      await shot(page, `a11y-${name}-${size === PHONE ? '360' : 'desktop'}`);
    }
    for (const size of [PHONE, REFLOW]) {
      await page.setViewportSize(size);
      const o = await horizontalOverflow(page);
      if (o.scrollWidth > o.clientWidth) {
        problems.push(`${size.width} px wide: horizontal scroll (scrollWidth ${o.scrollWidth} > clientWidth ${o.clientWidth}); ` +
          `past the right edge: ${o.offenders.join(', ') || '(none found)'}`);
      }
    }
  } finally {
    await page.setViewportSize(DESKTOP);
  }
  if (problems.length) {
    const report = `${name} (${page.url()}), axe-core ${AXE_VERSION}, tags ${[...WCAG_TAGS, ...EXTRA_TAGS].join(', ')}:\n${problems.join('\n')}`;
    console.log(report);
    assert.fail(report);
  }
}

describe('accessibility of the portal (axe-core, WCAG 2.1 AA, 360 px)', { concurrency: false }, () => {
  before(async () => {
    stack = await useStack();
    context = await openBrowser(stack);
    page = context.pages()[0] || (await context.newPage());
  });

  after(async () => {
    await context?.close().catch(() => {});
    await stack?.stop();
  });

  test('login page (signed out)', async (t) => {
    await page.goto('/');
    await page.waitForURL(/\/auth\/login/);
    await page.locator('#je-me-connecte').waitFor();
    await auditScreen(t, 'login');
    // The help under "Je me connecte", open.
    await page.locator('details#aide-connexion > summary').click();
    await page.locator('details#aide-connexion[open]').waitFor();
    await auditScreen(t, 'login-help');
    await login(page, stack, HERVE.id);
    await page.locator('header .utilisateur .nom', { hasText: HERVE.name }).waitFor();
  });

  test('home with unseen results', async (t) => {
    await page.goto('/');
    const results = await page.locator('#resultats-non-vus li.resultat').count();
    assert.ok(results > 0, 'Dr Lefèvre has unseen results on his home page');
    await auditScreen(t, 'home');
  });

  test('home, typeahead with results', async (t) => {
    await page.goto('/');
    await page.locator('#recherche').fill('scanap');
    await page.locator('#resultats-recherche a.patient', { hasText: FRANCOISE.label }).first().waitFor();
    await page.locator('#recherche-statut', { hasText: 'trouvé' }).waitFor();
    await auditScreen(t, 'home-typeahead');
  });

  test('home, typeahead with no result', async (t) => {
    await page.goto('/');
    await page.locator('#recherche').fill('zzqxw');
    await page.locator('#recherche-statut', { hasText: 'Aucun patient' }).waitFor();
    await auditScreen(t, 'home-typeahead-none');
  });

  test('home, dossier-number card open in place', async (t) => {
    await page.goto('/');
    await page.locator('#utiliser-numero').click();
    await page.locator('#carte-numero').waitFor({ state: 'visible' });
    await auditScreen(t, 'home-card-numero');
  });

  test('session: "Votre session va expirer" (keyboard, "Rester connecté"), then "Votre session a expiré"', async (t) => {
    // A browser of its own whose clock the test moves (Playwright's fake
    // clock): no 28-minute wait. The server's session is real.
    const other = await openBrowser(stack);
    const saved = page;
    try {
      page = other.pages()[0] || (await other.newPage());
      await other.clock.install();
      await login(page, stack, HERVE.id);
      await page.goto('/');
      const remaining = Number(await page.locator('body').getAttribute('data-session-remaining-ms'));
      assert.ok(remaining > 120_000, `session remaining: ${remaining} ms`);
      const notice = page.locator('#avis-session');
      assert.equal(await notice.getAttribute('role'), 'status');
      assert.equal(await notice.getAttribute('aria-live'), 'polite');
      assert.equal((await notice.innerText()).trim(), '', 'no notice before the last two minutes');
      await page.clock.fastForward(remaining - 110_000);
      await notice.getByText('Votre session va expirer dans 2 minutes').waitFor();
      await auditScreen(t, 'session-warning');
      // Keyboard: Tab reaches "Rester connecté"; Enter keeps the session.
      let reached = false;
      for (let i = 0; i < 15 && !reached; i++) {
        await page.keyboard.press('Tab');
        reached = await page.evaluate(() => document.activeElement && document.activeElement.textContent === 'Rester connecté');
      }
      assert.ok(reached, 'Tab reaches "Rester connecté"');
      const touched = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/portail/session');
      await page.keyboard.press('Enter');
      assert.equal((await touched).status(), 200);
      await page.waitForFunction(() => document.getElementById('avis-session').childElementCount === 0);
      assert.equal(new URL(page.url()).pathname, '/', 'non-modal: the page stays');
    } finally {
      page = saved;
      await other.close().catch(() => {});
    }
    // The page after a timeout (signed out, as the server sends it there).
    const fresh = await openBrowser(stack);
    try {
      page = fresh.pages()[0] || (await fresh.newPage());
      await page.goto('/auth/login?return_to=%2F&expiree=1&action=1');
      await page.locator('h1', { hasText: 'Votre session a expiré' }).waitFor();
      await page.locator('#action-non-faite').waitFor();
      assert.match(await page.locator('#je-me-connecte').getAttribute('href'), /return_to=%2F/);
      await auditScreen(t, 'session-expired');
    } finally {
      page = saved;
      await fresh.close().catch(() => {});
    }
  });

  test('search page with results', async (t) => {
    await page.goto('/portail/recherche?q=scanap');
    await page.locator('#resultats-recherche a.patient', { hasText: FRANCOISE.label }).first().waitFor();
    await auditScreen(t, 'search');
  });

  test('search page with no result', async (t) => {
    await page.goto('/portail/recherche?q=zzqxw');
    await page.locator('#recherche-statut', { hasText: 'Aucun patient' }).waitFor();
    await auditScreen(t, 'search-none');
  });

  test('patient page, every venue expanded', async (t) => {
    // His patient with the most dossiers (venues), from the demo records.
    const [[patientId, dossiers]] = recordsQuery(stack.dataDir, `
      SELECT d.patient_id, COUNT(DISTINCT d.dossier_number) AS n
      FROM rec_care_team c JOIN rec_dossiers d ON d.dossier_number = c.dossier_number
      WHERE c.national_id = '${HERVE.id}'
      GROUP BY d.patient_id ORDER BY n DESC, d.patient_id LIMIT 1`);
    await page.goto(`/portail/patients/${encodeURIComponent(patientId)}`);
    const venues = page.locator('details.venue');
    await venues.first().waitFor();
    const shown = await venues.count();
    assert.ok(shown >= 2, `patient ${patientId}: ${shown} venue(s) shown, ${dossiers} dossier(s) with Dr Lefèvre`);
    t.diagnostic(`patient ${patientId}: ${shown} venues`);
    await venues.evaluateAll((ds) => ds.forEach((d) => { d.open = true; }));
    assert.equal(await page.locator('details.venue:not([open])').count(), 0, 'every venue is open');
    await auditScreen(t, 'patient');
  });

  test('report', async (t) => {
    await openPatientBySearch(page, 'scanap', FRANCOISE.label);
    const link = page.locator('details.venue ul.comptes-rendus a').first();
    if (!(await link.isVisible())) {
      await page.locator('details.venue', { has: link }).locator('summary').click();
    }
    await Promise.all([page.waitForURL(/\/portail\/comptes-rendus\//), link.click()]);
    await page.locator('article.compte-rendu h1').waitFor();
    await auditScreen(t, 'report');
  });

  test('dossier-number form with an error, then the lockout message', async (t) => {
    await page.goto('/portail/dossier');
    const submit = page.getByRole('button', { name: 'Accéder au dossier' });
    const attempt = async (date) => {
      await page.locator('#numero-dossier').fill(NO_SUCH_DOSSIER);
      await page.locator('#date-naissance').fill(date);
      await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.waitForLoadState('load'), submit.click()]);
      await page.locator('#erreur-dossier').waitFor();
      return (await page.locator('#erreur-dossier').innerText()).trim();
    };
    await auditScreen(t, 'dossier-form');
    const first = await attempt('01/01/1961');
    assert.match(first, /Aucun dossier ne correspond/, `first attempt: ${first}`);
    await auditScreen(t, 'dossier-error');
    for (let i = 2; i <= MAX_FAILURES; i++) {
      const msg = await attempt(`0${i}/01/1961`);
      assert.match(msg, /Aucun dossier ne correspond/, `attempt ${i}: ${msg}`);
    }
    const locked = await attempt('01/02/1961');
    assert.match(locked, /Trop de tentatives/, `after ${MAX_FAILURES} failures: ${locked}`);
    await auditScreen(t, 'dossier-locked');
  });

  test('error page (unknown address)', async (t) => {
    const res = await page.goto('/portail/adresse-inconnue');
    assert.equal(res.status(), 404);
    await page.locator('section.erreur h1').waitFor();
    await auditScreen(t, 'not-found');
  });

  test('keyboard: Tab reaches the search field and the logout control, focus visible', async (t) => {
    const problems = [];
    for (const [label, size] of [['desktop 1280x900', DESKTOP], ['360x740', PHONE]]) {
      await page.setViewportSize(size);
      try {
        await page.goto('/');
        await page.locator('#recherche').waitFor();
        const { path, found } = await tabThrough(page, {
          search: (f) => f.id === 'recherche',
          logout: (f) => f.tag === 'button' && /Se déconnecter/.test(f.text),
        });
        const walked = path.map(describeFocus).join(' → ');
        t.diagnostic(`${label}, Tab: ${walked}`);
        for (const what of ['search', 'logout']) {
          if (!found[what]) problems.push(`${label}: Tab never reached the ${what} control (${walked})`);
        }
        // Every control on the way, not only the two wanted, must show its focus.
        for (const f of path.filter(Boolean)) {
          if (!f.focusVisible) problems.push(`${label}: ${describeFocus(f)} focused by Tab but not :focus-visible`);
          else if (!f.indicator) problems.push(`${label}: ${describeFocus(f)} has no visible focus indicator (${f.style})`);
          if (!f.onScreen) problems.push(`${label}: ${describeFocus(f)} is focused off screen`);
        }
      } finally {
        await page.setViewportSize(DESKTOP);
      }
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  test('offline page', async (t) => {
    await openPatientBySearch(page, 'scanap', FRANCOISE.label);
    // The worker precaches the offline page before it activates.
    await page.waitForFunction(async () => {
      const r = await navigator.serviceWorker.ready;
      return r.active && r.active.state === 'activated';
    }, null, { polling: 100 });
    await context.setOffline(true);
    try {
      await page.goto('/');
      await page.locator('h1#titre-hors-ligne').waitFor();
      await page.locator('#dernieres-recherches a.patient', { hasText: FRANCOISE.label }).first().waitFor();
      await auditScreen(t, 'offline');
    } finally {
      await context.setOffline(false);
    }
  });

  test('logout page of the portal', async (t) => {
    await page.goto('/');
    await page.getByRole('button', { name: 'Se déconnecter' }).click();
    await page.getByText('Vous êtes déconnecté', { exact: false }).first().waitFor({ timeout: 15_000 });
    const origin = new URL(stack.base).origin;
    assert.equal(new URL(page.url()).origin, origin, `the logout ends on the portal: ${page.url()}`);
    await auditScreen(t, 'logged-out');
  });
});
