// Single sign-on from Hopital Manager (issue 11, item 8), in Chromium,
// against the real demo stack: Dr Inès Haddad-Leclère (pédiatre; no other
// scenario uses her) is "signed in to Hopital Manager" on the demo's
// simulator (the dev identity provider's /hopital-manager page), opens one
// of her dossiers from there, and lands straight on that dossier in the
// portal: no login page, no confirmation page (the simulator's origin is
// the demo's hm_sso.allowed_origins), her name in the header.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { useStack } from './lib/stack.mjs';
import { openBrowser, shot } from './lib/browser.mjs';
import { recordsQuery } from './lib/records.mjs';

const INES = { id: '899700456785', name: 'Inès Haddad-Leclère' };

let stack;
let context;
let page;

describe('a launch from Hopital Manager (simulation)', { concurrency: false }, () => {
  before(async () => {
    stack = await useStack();
    context = await openBrowser(stack);
    page = context.pages()[0] || (await context.newPage());
  });

  after(async () => {
    await context?.close().catch(() => {});
    await stack?.stop();
  });

  test('11. the simulator launches straight into one of her dossiers', async () => {
    // Her newest dossier on which her care-team role lets her see it.
    const [row] = recordsQuery(stack.dataDir, `
      SELECT d.dossier_number, p.family_name, p.given_name
      FROM rec_care_team c
      JOIN rec_dossiers d ON d.dossier_number = c.dossier_number
      JOIN rec_patients p ON p.patient_id = d.patient_id
      WHERE c.national_id = '${INES.id}' AND c.role_code IN ('MR', 'MT', 'CO', 'PR', 'AD')
      ORDER BY d.dossier_date DESC, d.dossier_number LIMIT 1`);
    assert.ok(row, 'Dr Haddad-Leclère is on at least one care team in the demo records');
    const [dossier, family, given] = row;

    await page.goto(`${stack.idp}/hopital-manager`);
    await page.locator('h1', { hasText: 'Hopital Manager (simulation)' }).waitFor();
    assert.match(await page.locator('.warning').innerText(), /simulateur/i, 'marked as a simulator');
    await shot(page, '11-hm-simulator');
    await page.locator(`input[name=national_id][value="${INES.id}"]`).check();
    await page.locator('#dossier').fill(dossier);
    const origin = new URL(stack.base).origin;
    const dossierPath = `/portail/dossiers/${encodeURIComponent(dossier)}`;
    await Promise.all([
      page.waitForURL((u) => u.origin === origin && u.pathname === dossierPath),
      page.getByRole('button', { name: "Ouvrir dans l'espace professionnel de santé" }).click(),
    ]);
    // No login page and no confirmation page on the way: the dossier itself.
    await page.locator('section.entete-patient h1').waitFor();
    const title = await page.locator('section.entete-patient h1').innerText();
    assert.ok(title.includes(family) && title.includes(given), `the dossier's patient: ${title}`);
    const user = await page.locator('header .utilisateur .nom').innerText();
    assert.equal(user.toLocaleLowerCase('fr'), INES.name.toLocaleLowerCase('fr'), 'signed in as her');
    await shot(page, '11-hm-dossier');

    const venues = await page.locator('details.venue').count();
    assert.equal(venues, 1, 'the dossier page shows that dossier');
  });
});
