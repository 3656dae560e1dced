// The real stack for the browser tests: Orthanc (scripts/lib/orthanc.sh)
// and `espace-ps-demo demo` (dev identity provider, SQLite records, DICOM loaded
// into the empty Orthanc at start), on free loopback ports, in a throwaway
// directory.
//
// Two ways to use it:
//   - from a test file: `const stack = await useStack()` in before(), and
//     `await stack.stop()` in after(). When ESPACE_BROWSER_BASE_URL is set
//     (see below) the running stack is reused and stop() does nothing;
//     otherwise the file starts its own stack.
//   - as a wrapper that starts ONE stack for every test file:
//       node proxy/tests/browser/lib/stack.mjs node --test proxy/tests/browser/
//     It exports ESPACE_BROWSER_BASE_URL, ESPACE_BROWSER_IDP_URL,
//     ESPACE_BROWSER_DATA_DIR and ESPACE_BROWSER_ORTHANC_URL (Orthanc
//     itself, for test setup only) to the command, and stops the stack
//     after it.
//
// Environment: ESPACE_PS_DEMO_BIN (the demo binary; default
// $CARGO_TARGET_DIR/debug/espace-ps-demo,
// CARGO_TARGET_DIR defaulting to <repo>/target), ESPACE_BROWSER_KEEP_DIR=1
// keeps the throwaway directory (logs, databases) after the run.

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const ORTHANC_LIB = path.join(ROOT, 'scripts/lib/orthanc.sh');

const READY_TIMEOUT_MS = 180_000; // demo start: records + ~400 studies into Orthanc

export function binaryPath() {
  if (process.env.ESPACE_PS_DEMO_BIN) return process.env.ESPACE_PS_DEMO_BIN;
  let target = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
  if (!path.isAbsolute(target)) target = path.join(ROOT, target);
  return path.join(target, 'debug', 'espace-ps-demo');
}

/** A loopback TCP port that is free right now (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function freePorts(n) {
  const out = new Set();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

/**
 * Polls `check` (async, truthy when done) every `intervalMs` until it is
 * truthy or `timeoutMs` is over; `alive` (optional) says whether the process
 * we wait for still runs. Bounded: never a fixed sleep.
 */
export async function waitUntil(what, check, { timeoutMs = 30_000, intervalMs = 100, alive } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (alive && !alive()) throw new Error(`${what}: the process exited before it was ready`);
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function httpOk(url) {
  const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status === 200;
}

function tail(file, lines = 40) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function orthanc(cmd, ...args) {
  // Quoted positional parameters: DIR and ports come from us, but stay safe.
  return execFileP('bash', ['-c', `. "$0" && ${cmd} "$@"`, ORTHANC_LIB, ...args], {
    cwd: ROOT,
    timeout: 60_000,
  });
}

/** The instant the demo's clock reads at start (RFC 3339). */
export const TEST_NOW = process.env.ESPACE_TEST_NOW || '2026-11-30T09:30:00Z';

/**
 * Starts Orthanc and the demo; resolves to the stack description. With
 * `ohifDir` (a site installed by deploy/ohif/install.sh), the images open in
 * OHIF v3 over Orthanc's DICOMweb (route table `ohif`) instead of Orthanc's
 * Web Viewer.
 */
export async function startStack({ ohifDir } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(`${bin} not found: build it first (cargo build -p espace-ps-demo)`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'espace-browser-'));
  const [portal, idp, admin, orthancHttp, orthancDicom] = await freePorts(5);
  const stack = {
    dir,
    dataDir: path.join(dir, 'data'),
    base: `http://127.0.0.1:${portal}`,
    idp: `http://127.0.0.1:${idp}`,
    orthanc: `http://127.0.0.1:${orthancHttp}`,
    demoLog: path.join(dir, 'demo.log'),
    demo: null,
    owned: true,
  };
  stack.stop = () => stopStack(stack);

  try {
    await orthanc('orthanc_start', path.join(dir, 'orthanc'), String(orthancHttp), String(orthancDicom));
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`Orthanc did not start: ${e.stderr || e.message}`);
  }

  const log = openSync(stack.demoLog, 'a');
  const demo = spawn(bin, [
    'demo',
    '--listen', `127.0.0.1:${portal}`,
    '--idp-listen', `127.0.0.1:${idp}`,
    '--admin-listen', `127.0.0.1:${admin}`,
    '--viewer', `127.0.0.1:${orthancHttp}`,
    '--data-dir', stack.dataDir,
    '--policies', path.join(ROOT, 'policies'),
    // The demo lives at one instant, never the system date (same pinned
    // instant as the Rust tests; scripts/test.sh may move it).
    '--now', TEST_NOW,
    ...(ohifDir ? ['--ohif-dir', ohifDir] : []),
  ], { cwd: ROOT, stdio: ['ignore', log, log] });
  stack.demo = demo;
  let exited = false;
  demo.on('exit', () => { exited = true; });

  try {
    await waitUntil('espace-ps-demo demo (GET /-/readyz)', () => httpOk(`${stack.base}/-/readyz`), {
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: 200,
      alive: () => !exited,
    });
  } catch (e) {
    const msg = `${e.message}\n---- end of ${stack.demoLog}\n${tail(stack.demoLog)}`;
    await stopStack(stack);
    throw new Error(msg);
  }
  return stack;
}

export async function stopStack(stack) {
  if (!stack || !stack.owned) return;
  stack.owned = false;
  const demo = stack.demo;
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    const gone = new Promise((r) => demo.once('exit', r));
    demo.kill('SIGTERM');
    const t = setTimeout(() => demo.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }
  await orthanc('orthanc_stop', path.join(stack.dir, 'orthanc')).catch(() => {});
  if (process.env.ESPACE_BROWSER_KEEP_DIR === '1') {
    console.error(`browser tests: stack directory kept: ${stack.dir}`);
  } else {
    rmSync(stack.dir, { recursive: true, force: true });
  }
}

/** The stack given by the environment (wrapper mode), or a new one. */
export async function useStack() {
  const base = process.env.ESPACE_BROWSER_BASE_URL;
  if (base) {
    return {
      base,
      idp: process.env.ESPACE_BROWSER_IDP_URL,
      dataDir: process.env.ESPACE_BROWSER_DATA_DIR,
      orthanc: process.env.ESPACE_BROWSER_ORTHANC_URL,
      owned: false,
      stop: async () => {},
    };
  }
  return startStack();
}

// Wrapper mode: node lib/stack.mjs COMMAND [ARGS...]
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const cmd = process.argv.slice(2);
  if (!cmd.length) {
    console.error('usage: node proxy/tests/browser/lib/stack.mjs COMMAND [ARGS...]');
    process.exit(2);
  }
  const t0 = Date.now();
  let stack;
  try {
    stack = await startStack();
  } catch (e) {
    console.error(`browser tests: ${e.message}`);
    process.exit(1);
  }
  console.log(`    stack ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: portal ${stack.base}, dev IdP ${stack.idp}, Orthanc ${stack.orthanc}`);
  const child = spawn(cmd[0], cmd.slice(1), {
    stdio: 'inherit',
    env: {
      ...process.env,
      ESPACE_BROWSER_BASE_URL: stack.base,
      ESPACE_BROWSER_IDP_URL: stack.idp,
      ESPACE_BROWSER_DATA_DIR: stack.dataDir,
      ESPACE_BROWSER_ORTHANC_URL: stack.orthanc,
    },
  });
  const forward = (sig) => () => child.kill(sig);
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));
  const code = await new Promise((r) => child.on('exit', (c, s) => r(c ?? (s ? 1 : 0))));
  if (code !== 0) console.error(`---- end of the demo log (${stack.demoLog})\n${tail(stack.demoLog, 30)}`);
  await stopStack(stack);
  process.exit(code);
}
