/* espace-ps: the portal's only script. Vanilla, no dependencies, loaded
 * deferred on every page; each feature starts only where its elements
 * exist. CSP: script-src 'self', so no inline script anywhere; data is
 * never parsed as HTML (textContent and setAttribute only).
 *
 * The pure functions at the top are exported to node tests when `module`
 * exists (tests/app.test.mjs loads this file in a vm context).
 */
(function (global) {
  'use strict';

  const RECENT_KEY = 'espace-ps:recent';
  // When the session the stored list belongs to ends if nothing else happens
  // (client clock, ms): past it, the list is dropped even offline.
  const SESSION_END_KEY = 'espace-ps:session-end';
  const OUR_KEY_PREFIX = 'espace-ps:';
  const RECENT_MAX = 10;
  const MIN_CHARS = 2;
  const DEBOUNCE_MS = 250;
  const SEARCH_URL = '/api/portail/patients';
  const LOGIN_URL = '/auth/login?return_to=/';
  const DOSSIER_URL = '/portail/dossier';
  const LOGOUT_CLEANUP_MAX_MS = 1000;
  const SESSION_URL = '/api/portail/session';
  // The notice "Votre session va expirer" shows this long before the end.
  const SESSION_WARNING_MS = 2 * 60 * 1000;

  const MSG = {
    tooShort: 'Saisissez au moins 2 caractères',
    none: 'Aucun patient ne correspond à votre recherche.',
    useNumber: 'Utiliser un n° de dossier',
    offline: 'Vous êtes hors ligne : la recherche nécessite une connexion.',
    failed: 'La recherche est momentanément indisponible. Réessayez dans quelques instants.',
  };

  // === pure functions (tested) ===

  /** The query to send, or null below MIN_CHARS characters once trimmed. */
  function normalizeQuery(text) {
    const q = String(text == null ? '' : text).trim().replace(/\s+/g, ' ');
    return Array.from(q).length >= MIN_CHARS ? q : null;
  }

  /**
   * A debouncer: call(arg) (re)starts the timer, fn(arg) runs once `wait` ms
   * after the last call. Timers are injectable for tests.
   */
  function createDebouncer(fn, wait, timers) {
    const t = timers || { setTimeout: global.setTimeout.bind(global), clearTimeout: global.clearTimeout.bind(global) };
    let handle = null;
    return {
      call(arg) {
        if (handle !== null) t.clearTimeout(handle);
        handle = t.setTimeout(() => {
          handle = null;
          fn(arg);
        }, wait);
      },
      cancel() {
        if (handle !== null) t.clearTimeout(handle);
        handle = null;
      },
      pending() {
        return handle !== null;
      },
    };
  }

  /**
   * Formats what the user typed in a jj/mm/aaaa field: keeps digits, inserts
   * the slashes, pads a one-digit day or month the user closed with a
   * separator ("1/" -> "01/"), accepts a pasted ISO date (aaaa-mm-jj).
   */
  function formatDateInput(raw) {
    const s = String(raw == null ? '' : raw);
    const iso = /^\s*(\d{4})-(\d{2})-(\d{2})\s*$/.exec(s);
    if (iso) return iso[3] + '/' + iso[2] + '/' + iso[1];
    const groups = s.split(/\D+/);
    let digits = '';
    for (let i = 0; i < groups.length; i++) {
      let g = groups[i];
      const closed = i < groups.length - 1;
      if (closed && g.length === 1 && (digits.length === 0 || digits.length === 2)) g = '0' + g;
      digits += g;
    }
    digits = digits.slice(0, 8);
    let out = digits.slice(0, 2);
    if (digits.length > 2) out += '/' + digits.slice(2, 4);
    if (digits.length > 4) out += '/' + digits.slice(4);
    // Keep the separator the user just typed after a complete day or month.
    if (/\D$/.test(s) && (digits.length === 2 || digits.length === 4)) out += '/';
    return out;
  }

  function cleanText(v, max) {
    return typeof v === 'string' ? v.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, max) : '';
  }

  /** The minimal patient we keep: id, sex, names, birth date. Null if unusable. */
  function sanitizePatient(p) {
    if (!p || typeof p !== 'object') return null;
    const id = typeof p.id === 'number' && Number.isFinite(p.id) ? String(p.id) : cleanText(p.id, 64);
    if (!id) return null;
    const sex = typeof p.sex === 'string' && /^[A-Za-z]$/.test(p.sex) ? p.sex.toUpperCase() : '';
    const birth = typeof p.birth_date === 'string' && /^\d{2}\/\d{2}\/\d{4}$/.test(p.birth_date) ? p.birth_date : '';
    const out = {
      id,
      sex,
      family_name: cleanText(p.family_name, 100),
      given_name: cleanText(p.given_name, 100),
      birth_date: birth,
    };
    // A dossier opened by its number: the entry links to that dossier.
    if (typeof p.dossier === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(p.dossier)) out.dossier = p.dossier;
    return out;
  }

  /** New list with `patient` first, deduplicated by id, at most `max` long. */
  function addRecent(list, patient, max) {
    const cap = max || RECENT_MAX;
    const p = sanitizePatient(patient);
    const rest = (Array.isArray(list) ? list : []).map(sanitizePatient).filter(Boolean);
    if (!p) return rest.slice(0, cap);
    return [p].concat(rest.filter((x) => x.id !== p.id)).slice(0, cap);
  }

  /** Normalizes a list (deduplicated, capped, sanitized), keeping its order. */
  function normalizeRecent(list, max) {
    const cap = max || RECENT_MAX;
    const out = [];
    const seen = new Set();
    for (const item of Array.isArray(list) ? list : []) {
      const p = sanitizePatient(item);
      if (p && !seen.has(p.id)) {
        seen.add(p.id);
        out.push(p);
      }
    }
    return out.slice(0, cap);
  }

  /** Parses the stored JSON; anything unexpected gives an empty list. */
  function parseRecent(text) {
    try {
      return normalizeRecent(JSON.parse(text));
    } catch (e) {
      return [];
    }
  }

  function sexSymbol(sex) {
    return sex === 'F' ? '♀' : sex === 'M' ? '♂' : '';
  }

  /** What a screen reader says for the symbol (the server's words). */
  function sexLabel(sex) {
    return sex === 'F' ? 'Femme' : sex === 'M' ? 'Homme' : '';
  }

  /** "♀ SCANAP Françoise", the text before the birth date. */
  function patientLabel(p) {
    const parts = [];
    const sym = sexSymbol(p.sex);
    if (sym) parts.push(sym);
    if (p.family_name) parts.push(p.family_name.toLocaleUpperCase('fr'));
    if (p.given_name) parts.push(p.given_name);
    return parts.join(' ');
  }

  /**
   * The link to a patient: the server's `url` when it is one of our portal
   * paths, otherwise /portail/patients/{id}. Never an absolute or scheme URL.
   */
  function patientUrl(p, serverUrl) {
    if (typeof serverUrl === 'string' && /^\/portail\/[A-Za-z0-9._~%\-/]+$/.test(serverUrl) &&
        serverUrl.indexOf('//') === -1 && serverUrl.indexOf('/..') === -1) {
      return serverUrl;
    }
    if (p.dossier) return '/portail/dossiers/' + encodeURIComponent(p.dossier);
    return '/portail/patients/' + encodeURIComponent(p.id);
  }

  /** The status line for a search answer. */
  function resultStatus(count, truncated) {
    if (count === 0) return MSG.none;
    if (truncated) return 'Plus de ' + count + ' patients trouvés : précisez votre recherche.';
    return count === 1 ? '1 patient trouvé' : count + ' patients trouvés';
  }

  /** When to show the expiry notice: ms from now (0: at once), or null. */
  function warningDelay(remainingMs, leadMs) {
    const r = Number(remainingMs);
    if (!Number.isFinite(r) || r <= 0) return null;
    return Math.max(0, r - (leadMs == null ? SESSION_WARNING_MS : leadMs));
  }

  // === browser storage ===

  function storage(kind) {
    try {
      const s = global[kind];
      return s && typeof s.getItem === 'function' ? s : null;
    } catch (e) {
      return null; // storage disabled
    }
  }

  function readRecent() {
    const s = storage('localStorage');
    if (!s) return [];
    try {
      return parseRecent(s.getItem(RECENT_KEY));
    } catch (e) {
      return [];
    }
  }

  function writeRecent(list) {
    const s = storage('localStorage');
    if (!s) return;
    try {
      if (list.length) s.setItem(RECENT_KEY, JSON.stringify(list));
      else s.removeItem(RECENT_KEY);
    } catch (e) {
      // Quota or private mode: the list is a convenience only.
    }
  }

  /** Removes our localStorage keys and everything in sessionStorage. */
  function clearStorage() {
    const ls = storage('localStorage');
    if (ls) {
      try {
        const ours = [];
        for (let i = 0; i < ls.length; i++) {
          const k = ls.key(i);
          if (k && k.indexOf(OUR_KEY_PREFIX) === 0) ours.push(k);
        }
        ours.forEach((k) => ls.removeItem(k));
      } catch (e) { /* storage disabled */ }
    }
    const ss = storage('sessionStorage');
    if (ss) {
      try { ss.clear(); } catch (e) { /* storage disabled */ }
    }
  }

  /**
   * A signed-in page says how long its session lives if idle
   * (`data-session-remaining-ms`, from the server's idle and absolute
   * timeouts): remember the deadline on this device's clock.
   */
  function rememberSessionEnd(doc, now, remainingMs) {
    const body = doc.body;
    if (!body || !body.hasAttribute('data-signed-in')) return;
    const ms = Number(remainingMs == null ? body.getAttribute('data-session-remaining-ms') : remainingMs);
    const s = storage('localStorage');
    if (!s || !Number.isFinite(ms) || ms <= 0) return;
    try {
      s.setItem(SESSION_END_KEY, String(now + ms));
    } catch (e) { /* quota or private mode */ }
  }

  /** Whether the session the stored list belongs to may still be alive. */
  function storedSessionAlive(now) {
    const s = storage('localStorage');
    if (!s) return false;
    let end;
    try {
      end = Number(s.getItem(SESSION_END_KEY));
    } catch (e) {
      return false;
    }
    return Number.isFinite(end) && end > now;
  }

  /**
   * The list a page without a session list (the offline page) may show: none
   * once the session has ended by timeout, and then the stored copy goes.
   */
  function recentForOffline(now) {
    if (!storedSessionAlive(now)) {
      clearStorage();
      return [];
    }
    return readRecent();
  }

  /** Deletes every Cache Storage cache of this origin (ours: shell, viewer). */
  function clearCaches() {
    if (!global.caches || typeof global.caches.keys !== 'function') return Promise.resolve();
    return global.caches.keys()
      .then((names) => Promise.all(names.map((n) => global.caches.delete(n))))
      .catch(() => {});
  }

  // === DOM ===

  /**
   * The same markup as the server's lists: the symbol is an image named
   * "Femme" / "Homme" for screen readers; name and birth date are the two
   * ends of the flex line.
   */
  function patientLink(doc, p, href) {
    const a = doc.createElement('a');
    a.className = 'patient';
    a.href = href || patientUrl(p);
    a.setAttribute('data-patient', JSON.stringify(p));
    const name = doc.createElement('span');
    name.className = 'nom-patient';
    const sym = sexSymbol(p.sex);
    if (sym) {
      const s = doc.createElement('span');
      s.className = 'sexe';
      s.setAttribute('role', 'img');
      s.setAttribute('aria-label', sexLabel(p.sex));
      s.textContent = sym;
      name.appendChild(s);
      name.appendChild(doc.createTextNode(' '));
    }
    name.appendChild(doc.createTextNode(patientLabel(Object.assign({}, p, { sex: '' }))));
    a.appendChild(name);
    if (p.birth_date) {
      a.appendChild(doc.createTextNode(' '));
      const span = doc.createElement('span');
      span.className = 'naissance';
      span.textContent = p.birth_date;
      a.appendChild(span);
    }
    return a;
  }

  function renderPatients(doc, ul, list, hrefs) {
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    list.forEach((p, i) => {
      const li = doc.createElement('li');
      li.appendChild(patientLink(doc, p, hrefs ? hrefs[i] : null));
      ul.appendChild(li);
    });
  }

  /** Moves focus through the links of `ul` with the arrow keys. */
  function listKeys(ul, input) {
    ul.addEventListener('keydown', (ev) => {
      const links = Array.from(ul.querySelectorAll('a'));
      const i = links.indexOf(ev.target);
      if (i === -1) return;
      let next = null;
      if (ev.key === 'ArrowDown') next = links[Math.min(i + 1, links.length - 1)];
      else if (ev.key === 'ArrowUp') next = i === 0 ? input : links[i - 1];
      else if (ev.key === 'Home') next = links[0];
      else if (ev.key === 'End') next = links[links.length - 1];
      else if (ev.key === 'Escape') next = input;
      if (next) {
        ev.preventDefault();
        next.focus();
      }
    });
  }

  function initSearch(doc) {
    const input = doc.getElementById('recherche');
    const list = doc.getElementById('resultats-recherche');
    const status = doc.getElementById('recherche-statut');
    if (!input || !list || !status) return;

    let controller = null;
    let seq = 0;
    let shown = null; // the query whose results are on screen

    function setStatus(text, withNumberLink) {
      while (status.firstChild) status.removeChild(status.firstChild);
      status.appendChild(doc.createTextNode(text));
      if (withNumberLink) {
        status.appendChild(doc.createTextNode(' '));
        const a = doc.createElement('a');
        a.className = 'bouton bouton-secondaire';
        a.href = DOSSIER_URL;
        // Opens the dossier-number fields in place where the page has them.
        a.setAttribute('data-ouvre-numero', '1');
        a.textContent = MSG.useNumber;
        status.appendChild(a);
      }
    }

    function clearResults() {
      while (list.firstChild) list.removeChild(list.firstChild);
      list.removeAttribute('aria-busy');
      shown = null;
    }

    function abort() {
      seq++;
      if (controller) controller.abort();
      controller = null;
    }

    async function run(q) {
      abort();
      const mine = seq;
      controller = typeof AbortController === 'function' ? new AbortController() : null;
      list.setAttribute('aria-busy', 'true');
      try {
        const res = await global.fetch(SEARCH_URL + '?q=' + encodeURIComponent(q), {
          credentials: 'same-origin',
          headers: { Accept: 'application/json' },
          cache: 'no-store',
          signal: controller ? controller.signal : undefined,
        });
        if (mine !== seq) return;
        if (res.status === 401) {
          // The session has ended: the recent list belonged to it.
          clearStorage();
          global.location.assign(LOGIN_URL);
          return;
        }
        if (!res.ok) throw new Error('HTTP ' + res.status);
        const data = await res.json();
        if (mine !== seq) return;
        const raw = data && Array.isArray(data.patients) ? data.patients : [];
        const patients = [];
        const hrefs = [];
        raw.forEach((r) => {
          const p = sanitizePatient(r);
          if (p) {
            patients.push(p);
            hrefs.push(patientUrl(p, r.url));
          }
        });
        renderPatients(doc, list, patients, hrefs);
        list.removeAttribute('aria-busy');
        shown = q;
        setStatus(resultStatus(patients.length, Boolean(data && data.truncated)), patients.length === 0);
      } catch (e) {
        if (e && e.name === 'AbortError') return;
        if (mine !== seq) return;
        clearResults();
        setStatus(global.navigator && global.navigator.onLine === false ? MSG.offline : MSG.failed);
      }
    }

    const debouncer = createDebouncer(run, DEBOUNCE_MS);

    input.addEventListener('input', () => {
      const q = normalizeQuery(input.value);
      if (q === null) {
        debouncer.cancel();
        abort();
        clearResults();
        setStatus(input.value.trim() ? MSG.tooShort : '');
        return;
      }
      if (q === shown) {
        // Back to the query on screen (or only spaces changed): drop any
        // pending or running search for another text.
        debouncer.cancel();
        abort();
        list.removeAttribute('aria-busy');
        return;
      }
      debouncer.call(q);
    });

    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'ArrowDown') {
        const first = list.querySelector('a');
        if (first) {
          ev.preventDefault();
          first.focus();
        }
      } else if (ev.key === 'Escape' && list.firstChild) {
        debouncer.cancel();
        abort();
        clearResults();
        setStatus('');
      }
    });

    listKeys(list, input);
  }

  /**
   * "Mes dernières recherches": remembers the patient of the current page,
   * keeps the list in step with the session's list when the server renders
   * it, and shows the stored list where the page has none (offline page).
   */
  function initRecent(doc) {
    const main = doc.querySelector('main[data-patient], #patient[data-patient]');
    if (main) {
      try {
        const p = sanitizePatient(JSON.parse(main.getAttribute('data-patient')));
        if (p) writeRecent(addRecent(readRecent(), p));
      } catch (e) { /* malformed attribute: nothing to remember */ }
    }

    const section = doc.getElementById('dernieres-recherches');
    const ul = section && section.querySelector('ul');
    if (!ul) return;
    const serverItems = ul.querySelectorAll('li');
    const offlinePage = doc.body && doc.body.hasAttribute('data-offline');

    if (!offlinePage && serverItems.length) {
      // The server's list is the session's: the stored copy follows it.
      const fromServer = [];
      ul.querySelectorAll('a[data-patient]').forEach((a) => {
        try {
          fromServer.push(JSON.parse(a.getAttribute('data-patient')));
        } catch (e) { /* skip */ }
      });
      if (fromServer.length) writeRecent(normalizeRecent(fromServer));
      return;
    }
    if (!offlinePage && (ul.hasAttribute('data-session') || section.hasAttribute('data-session'))) {
      // The server says this session has opened no patient yet: anything
      // stored is from an earlier session (maybe another user's).
      writeRecent([]);
      return;
    }
    const list = offlinePage ? recentForOffline(Date.now()) : readRecent();
    renderPatients(doc, ul, list);
    const empty = doc.getElementById('aucune-recherche');
    if (empty) empty.hidden = list.length > 0;
  }

  function isLogoutForm(form) {
    if (!form || form.tagName !== 'FORM') return false;
    if (form.id === 'deconnexion' || form.classList.contains('deconnexion')) return true;
    try {
      return new URL(form.action, global.location.href).pathname === '/auth/logout';
    } catch (e) {
      return false;
    }
  }

  /** Logout: clear what we stored in the browser, then let the form post. */
  function initLogout(doc) {
    doc.addEventListener('submit', (ev) => {
      const form = ev.target;
      if (!isLogoutForm(form) || ev.defaultPrevented) return;
      if (form.getAttribute('data-cleared') === '1') return;
      ev.preventDefault();
      if (form.getAttribute('data-clearing') === '1') return; // double click
      form.setAttribute('data-clearing', '1');
      clearStorage();
      let sent = false;
      const send = () => {
        if (sent) return;
        sent = true;
        form.setAttribute('data-cleared', '1');
        // The prototype method, in case a field is named "submit".
        global.HTMLFormElement.prototype.submit.call(form);
      };
      clearCaches().then(send, send);
      global.setTimeout(send, LOGOUT_CLEANUP_MAX_MS); // never hold the logout
    });
  }

  /** The signed-out pages (login, after logout) drop what a session left. */
  function initSignedOut(doc) {
    if (doc.body && doc.body.hasAttribute('data-signed-out')) {
      clearStorage();
      clearCaches();
    }
  }

  /** jj/mm/aaaa helper on the dossier-number form; never blocks submitting. */
  function initDateField(doc) {
    const input = doc.getElementById('date-naissance');
    if (!input || (input.type !== 'text' && input.type !== 'tel')) return;
    input.addEventListener('input', (ev) => {
      if (ev.inputType && ev.inputType.indexOf('delete') === 0) return;
      const v = input.value;
      let atEnd = true;
      try {
        atEnd = input.selectionStart === v.length;
      } catch (e) { /* no selection API */ }
      if (!atEnd) return; // editing in the middle: leave the caret alone
      const f = formatDateInput(v);
      if (f !== v) input.value = f;
    });
    input.addEventListener('blur', () => {
      const f = formatDateInput(input.value).replace(/\/$/, '');
      if (f !== input.value) input.value = f;
    });
  }

  /**
   * "Utiliser un n° de dossier" (user guide 2.2): the two fields appear in
   * the "Rechercher un patient" card, without leaving the page; so does the
   * link of a name search without result. Without this script the link
   * leads to the separate form page.
   */
  function initNumberCard(doc) {
    const card = doc.getElementById('carte-numero');
    const toggle = doc.getElementById('utiliser-numero');
    if (!card || !toggle) return;
    const setOpen = (open) => {
      card.hidden = !open;
      toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
      if (open) {
        const field = doc.getElementById('numero-dossier');
        if (field) field.focus();
      }
    };
    toggle.setAttribute('aria-expanded', card.hidden ? 'false' : 'true');
    doc.addEventListener('click', (ev) => {
      const a = ev.target && typeof ev.target.closest === 'function' ? ev.target.closest('a') : null;
      if (!a || ev.defaultPrevented || ev.button > 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
      if (a === toggle) {
        ev.preventDefault();
        setOpen(card.hidden);
      } else if (a.getAttribute('data-ouvre-numero') === '1') {
        ev.preventDefault();
        setOpen(true);
      }
    });
  }

  /**
   * Two minutes before the idle timeout, a non-modal notice (a polite live
   * region) "Votre session va expirer" with "Rester connecté", a same-origin
   * request that touches the session. At the end, the page reloads: the
   * server answers "Votre session a expiré".
   */
  function initSessionWarning(doc) {
    const body = doc.body;
    const box = doc.getElementById('avis-session');
    if (!body || !box || !body.hasAttribute('data-signed-in')) return;
    let warnTimer = null;
    let endTimer = null;
    const clear = () => {
      while (box.firstChild) box.removeChild(box.firstChild);
    };
    const schedule = (remaining) => {
      if (warnTimer !== null) global.clearTimeout(warnTimer);
      if (endTimer !== null) global.clearTimeout(endTimer);
      const delay = warningDelay(remaining);
      if (delay === null) return;
      warnTimer = global.setTimeout(show, delay);
      endTimer = global.setTimeout(() => global.location.reload(), Number(remaining) + 1000);
    };
    function show() {
      clear();
      const text = doc.createElement('span');
      text.textContent = 'Votre session va expirer dans 2 minutes, faute d\u2019activité.';
      const button = doc.createElement('button');
      button.type = 'button';
      button.className = 'secondaire';
      button.textContent = 'Rester connecté';
      button.addEventListener('click', stay);
      box.appendChild(text);
      box.appendChild(button);
    }
    async function stay() {
      try {
        const res = await global.fetch(SESSION_URL, {
          credentials: 'same-origin',
          headers: { Accept: 'application/json' },
          cache: 'no-store',
        });
        if (!res.ok) {
          global.location.reload();
          return;
        }
        const data = await res.json();
        clear();
        rememberSessionEnd(doc, Date.now(), data.remaining_ms);
        schedule(data.remaining_ms);
      } catch (e) {
        global.location.reload();
      }
    }
    schedule(body.getAttribute('data-session-remaining-ms'));
  }

  /**
   * "Installer l'application" (user guide 1.3), once signed in, only where
   * the browser offers the installation (`beforeinstallprompt`).
   */
  function initInstallHint(doc) {
    const hint = doc.getElementById('installer-app');
    if (!hint || !doc.body || !doc.body.hasAttribute('data-signed-in')) return;
    const button = hint.querySelector('button');
    let deferred = null;
    global.addEventListener('beforeinstallprompt', (ev) => {
      ev.preventDefault();
      deferred = ev;
      hint.hidden = false;
    });
    global.addEventListener('appinstalled', () => {
      hint.hidden = true;
      deferred = null;
    });
    if (button) {
      button.addEventListener('click', async () => {
        if (!deferred) return;
        const ev = deferred;
        deferred = null;
        hint.hidden = true;
        try {
          await ev.prompt();
        } catch (e) { /* the browser refused: nothing to do */ }
      });
    }
  }

  /** The report's "Imprimer" button: shown only where printing works. */
  function initPrint(doc) {
    const button = doc.getElementById('imprimer');
    if (!button || typeof global.print !== 'function') return;
    button.hidden = false;
    button.addEventListener('click', () => global.print());
  }

  function initOfflinePage(doc) {
    if (!doc.body || !doc.body.hasAttribute('data-offline')) return;
    // Served by the worker in place of the page that failed: retry that one.
    const retry = doc.getElementById('reessayer');
    if (retry && global.location.pathname !== '/static/hors-ligne.html') {
      retry.href = global.location.pathname + global.location.search;
    }
  }

  function registerWorker(doc) {
    const body = doc.body;
    if (!body || !(body.hasAttribute('data-signed-in') || body.hasAttribute('data-offline'))) return;
    const nav = global.navigator;
    if (!nav || !('serviceWorker' in nav) || global.isSecureContext === false) return;
    nav.serviceWorker.register('/sw.js', { scope: '/', updateViaCache: 'none' }).catch(() => {
      // No worker: the portal works the same, only without the offline page.
    });
  }

  function start(doc) {
    const initSessionEnd = (d) => rememberSessionEnd(d, Date.now());
    const steps = [initSignedOut, initSessionEnd, initRecent, initSearch, initLogout, initDateField, initNumberCard, initSessionWarning, initInstallHint, initPrint, initOfflinePage, registerWorker];
    steps.forEach((step) => {
      try {
        step(doc);
      } catch (e) {
        // One feature failing must not stop the others.
        if (global.console) global.console.error('espace-ps:', step.name, e);
      }
    });
  }

  const api = {
    RECENT_KEY,
    RECENT_MAX,
    MIN_CHARS,
    DEBOUNCE_MS,
    MSG,
    normalizeQuery,
    createDebouncer,
    formatDateInput,
    sanitizePatient,
    addRecent,
    normalizeRecent,
    parseRecent,
    sexSymbol,
    sexLabel,
    patientLabel,
    patientUrl,
    resultStatus,
    rememberSessionEnd,
    storedSessionAlive,
    recentForOffline,
    warningDelay,
  };

  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  } else if (global.document) {
    const doc = global.document;
    if (doc.readyState === 'loading') doc.addEventListener('DOMContentLoaded', () => start(doc));
    else start(doc);
  }
})(typeof window !== 'undefined' ? window : globalThis);
