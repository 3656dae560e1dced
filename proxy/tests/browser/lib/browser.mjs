// Chromium (Debian's package, driven by playwright-core) and the steps the
// scenarios share: screenshots, login through the dev identity provider.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * A fresh Chromium with its own throwaway profile (user-data-dir), opened as
 * a persistent context: an ordinary profile, not an incognito one, so that
 * Chromium judges installability as for a real user. Returns the context;
 * close() also removes the profile.
 */
export async function openBrowser(stack) {
  const profile = mkdtempSync(path.join(tmpdir(), 'espace-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    baseURL: stack.base,
    locale: 'fr-FR',
    timezoneId: 'Europe/Paris',
    viewport: { width: 1280, height: 900 },
  });
  // Fail fast: a user would have given up long before Playwright's 30 s.
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(20_000);
  const close = context.close.bind(context);
  context.close = async () => {
    try {
      await close();
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  };
  return context;
}

/** Full-page screenshot in artifacts/, named by step ("03-patient"). */
export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * From the login page: "Je me connecte" → PSC look-alike → "Carte CPS" tab →
 * the professional's button → back on the portal home.
 */
export async function login(page, stack, nationalId, { shots } = {}) {
  await page.goto('/');
  await page.waitForURL(/\/auth\/login/);
  if (shots) await shot(page, `${shots}-login`);
  await page.locator('#je-me-connecte').click();
  // The dev identity provider (another origin).
  await page.locator('label[for=onglet-carte]', { hasText: 'Carte CPS' }).waitFor();
  await page.locator('label[for=onglet-carte]').click();
  if (shots) await shot(page, `${shots}-psc`);
  await page.locator(`button[name=national_id][value="${nationalId}"]`).click();
  const origin = new URL(stack.base).origin;
  await page.waitForURL((u) => u.origin === origin && u.pathname === '/');
}

/** Home → typeahead → the patient page of the first hit labelled `label`. */
export async function openPatientBySearch(page, query, label) {
  await page.goto('/');
  await page.locator('#recherche').fill(query);
  const hit = page.locator('#resultats-recherche a.patient', { hasText: label });
  await hit.first().waitFor({ timeout: 5_000 });
  await Promise.all([page.waitForURL(/\/portail\/patients\//), hit.first().click()]);
}
