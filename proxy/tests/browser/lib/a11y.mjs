// Accessibility checks shared by the scenarios: axe-core (npm, pinned in
// package.json) injected into the page, a horizontal-overflow check for
// narrow screens, and a keyboard walk with the Tab key.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
export const AXE_VERSION = require('axe-core/package.json').version;

/** WCAG 2.1 level A and AA: what the portal must meet. */
export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
/**
 * Also run, and failing the same way: axe's landmark and heading rules
 * (region, landmark-one-main, landmark-unique, heading-order,
 * page-has-heading-one, …) carry only the 'best-practice' tag, not a WCAG
 * one, and are what checks WCAG 1.3.1 and 2.4.1/2.4.6 for landmarks and
 * headings.
 */
export const EXTRA_TAGS = ['best-practice'];

export const DESKTOP = { width: 1280, height: 900 };
/** The narrowest phone the portal is designed for. */
export const PHONE = { width: 360, height: 740 };
/** WCAG 1.4.10 Reflow: no horizontal scroll at 320 CSS px either. */
export const REFLOW = { width: 320, height: 640 };

/**
 * Runs axe-core on the whole page with the WCAG 2.1 A/AA rules (and the
 * best-practice ones, EXTRA_TAGS) and returns { violations, incomplete,
 * passes } (passes: the number of rules passed). No rule is disabled.
 *
 * axe is evaluated through the DevTools protocol (page.evaluate), which the
 * portal's Content-Security-Policy (script-src 'self') does not govern: the
 * page itself keeps its CSP, no inline <script> is added to it.
 */
export async function runAxe(page) {
  const injected = await page.evaluate(() => typeof window.axe === 'object');
  if (!injected) await page.evaluate(AXE_SOURCE);
  return page.evaluate(async (tags) => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: tags }, // rules with any of these tags
      resultTypes: ['violations', 'incomplete'],
    });
    const slim = (list) => list.map((v) => ({
      id: v.id,
      impact: v.impact,
      tags: v.tags.filter((t) => /^(wcag\d|best-practice)/.test(t)),
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({
        target: n.target.map((t) => (Array.isArray(t) ? t.join(' >>> ') : t)).join(' '),
        summary: n.failureSummary || '',
      })),
    }));
    return { violations: slim(r.violations), incomplete: slim(r.incomplete), passes: r.passes.length };
  }, [...WCAG_TAGS, ...EXTRA_TAGS]);
}

/** One line per violation: rule id, impact, help, then every target selector. */
export function formatViolations(violations) {
  return violations.map((v) => {
    const nodes = v.nodes.map((n) => `      ${n.target}${n.summary ? `\n        ${n.summary.replace(/\n\s*/g, ' / ')}` : ''}`);
    return `  - ${v.id} (${v.impact}; ${v.tags.join(', ')}): ${v.help} [${v.nodes.length} element(s)] ${v.helpUrl}\n${nodes.join('\n')}`;
  }).join('\n');
}

/**
 * Horizontal scroll on the page: { scrollWidth, clientWidth, offenders },
 * offenders being the deepest elements whose right edge passes the viewport.
 */
export async function horizontalOverflow(page) {
  return page.evaluate(() => {
    const root = document.documentElement;
    const width = root.clientWidth;
    const offenders = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.right <= width + 0.5) continue;
      if ([...el.children].some((c) => c.getBoundingClientRect().right > width + 0.5)) continue;
      const id = el.id ? `#${el.id}` : '';
      const cls = typeof el.className === 'string' && el.className ? `.${el.className.trim().split(/\s+/).join('.')}` : '';
      offenders.push(`${el.tagName.toLowerCase()}${id}${cls} (right edge ${Math.round(r.right)} px)`);
    }
    return { scrollWidth: root.scrollWidth, clientWidth: width, offenders: offenders.slice(0, 10) };
  });
}

/** What has the focus, and whether it shows (outline or box-shadow on :focus-visible). */
export async function focusState(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body || el === document.documentElement) return null;
    const cs = getComputedStyle(el);
    const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0 && cs.outlineColor !== 'rgba(0, 0, 0, 0)';
    const shadow = cs.boxShadow && cs.boxShadow !== 'none';
    const r = el.getBoundingClientRect();
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id,
      text: (el.getAttribute('aria-label') || el.innerText || el.value || el.getAttribute('placeholder') || '').trim().slice(0, 40),
      focusVisible: el.matches(':focus-visible'),
      indicator: outline || shadow,
      style: `outline: ${cs.outlineStyle} ${cs.outlineWidth} ${cs.outlineColor}; box-shadow: ${cs.boxShadow}`,
      onScreen: r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 && r.left < innerWidth,
    };
  });
}

/** Short human label of a focus state. */
export function describeFocus(f) {
  return f ? `${f.tag}${f.id ? `#${f.id}` : ''} "${f.text}"` : '(nothing)';
}

/**
 * Presses Tab (at most `max` times) until every `wanted` predicate has
 * matched a focused element. Call it on a freshly loaded page, so that Tab
 * starts from the top of the document. Returns the path (every focus state
 * reached) and, per wanted name, the state that matched it.
 */
export async function tabThrough(page, wanted, { max = 40 } = {}) {
  const path = [];
  const found = {};
  for (let i = 0; i < max && Object.keys(found).length < Object.keys(wanted).length; i++) {
    await page.keyboard.press('Tab');
    const f = await focusState(page);
    path.push(f);
    if (!f) continue;
    for (const [name, match] of Object.entries(wanted)) {
      if (!found[name] && match(f)) found[name] = f;
    }
  }
  return { path, found };
}
