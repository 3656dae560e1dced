// Self-test of the PSC look-alike provider: starts server.mjs on a free port
// and drives it like a browser (manual redirects, a cookie jar per host).
// Usage: node selftest.mjs   (exit code 0 when every check passes)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';

import { luhnValid } from './accounts.mjs';

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const { port: p } = s.address();
    s.close(() => resolve(p));
  });
});
const children = [];
async function startServer(port, extraArgs = [], env = {}) {
  const child = spawn(process.execPath, ['server.mjs', '--port', String(port), ...extraArgs], {
    cwd: new URL('.', import.meta.url).pathname,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  children.push(child);
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { if (String(d).includes('oidc-provider ready')) resolve(); });
    child.on('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  return child;
}
// A self-test that hangs must fail, and say where: scripts/test.sh waits
// for it before any other stage.
const DEADLINE_MS = 120_000;
let current = 'starting the provider';
setTimeout(() => {
  console.error(`selftest: FAILED, still in "${current}" after ${DEADLINE_MS / 1000} s`);
  children.forEach((c) => c.kill('SIGKILL'));
  process.exit(1);
}, DEADLINE_MS).unref();

// Each provider started must stop on SIGTERM within STOP_MS (the test
// services stop it so); one that does not is killed and the self-test fails.
const STOP_MS = 5_000;
function stopped(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(false); }, STOP_MS);
    child.once('exit', () => { clearTimeout(timer); resolve(true); });
    child.kill('SIGTERM');
  });
}

const port = await freePort();
await startServer(port);

const BASE = `http://127.0.0.1:${port}`;
const ISSUER = `${BASE}/auth/realms/esante-wallet`;
const REDIRECT = 'http://127.0.0.1:9/callback';
const b64json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString());
const decode = (jwt) => { const [h, p] = jwt.split('.'); return { header: b64json(h), payload: b64json(p) }; };
// A certificate whose subject is SELFTEST_CERT_DN, for the mutual TLS check
// (only its public half is used: the provider reads what the terminator
// forwards). openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256
// -nodes -subj "/C=FR/O=Espace PS Test/CN=selftest-client" -days 36500
const SELFTEST_CERT = `-----BEGIN CERTIFICATE-----
MIIB1jCCAX2gAwIBAgIUX+IuWaWTj5ucnudI8SulDmDAyu4wCgYIKoZIzj0EAwIw
QDELMAkGA1UEBhMCRlIxFzAVBgNVBAoMDkVzcGFjZSBQUyBUZXN0MRgwFgYDVQQD
DA9zZWxmdGVzdC1jbGllbnQwIBcNMjYxMTI1MTcyMjU0WhgPMjEyNjExMDExNzIy
NTRaMEAxCzAJBgNVBAYTAkZSMRcwFQYDVQQKDA5Fc3BhY2UgUFMgVGVzdDEYMBYG
A1UEAwwPc2VsZnRlc3QtY2xpZW50MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
SOelFcF4BRVfDH44qwsOl0GFwOI6kwBfO6eba4yhwd9m3mIYOvpEUCtYUo2WpqW5
qc312zWB5gCoJVFQwWeUO6NTMFEwHQYDVR0OBBYEFDw5DQWeW3CFfvIcQF49/nrL
8Oj1MB8GA1UdIwQYMBaAFDw5DQWeW3CFfvIcQF49/nrL8Oj1MA8GA1UdEwEB/wQF
MAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgTAMxBbLIspVNLGZMCmvpK75E7Qmey7r1
XbdpAtpw1swCIEih5Xy4CAR/eUt/rLa7F1yuYWWpF1sCsRxEQQ5HDf+s
-----END CERTIFICATE-----
`;
const SELFTEST_CERT_DN = 'CN=selftest-client,O=Espace PS Test,C=FR';
let passed = 0;
const check = (name, fn) => {
  current = name;
  return Promise.resolve().then(fn).then(() => { passed += 1; console.log(`ok   ${name}`); });
};

async function postJson(url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: res.status === 204 ? null : await res.json() };
}

// A tiny browser: cookies per host, follows redirects until redirect_uri.
function browser() {
  const jars = new Map();
  return async function go(startUrl, stopPrefix) {
    let url = startUrl;
    for (let hops = 0; hops < 10; hops += 1) {
      if (url.startsWith(stopPrefix)) return new URL(url);
      const { host } = new URL(url);
      const jar = jars.get(host) || new Map();
      jars.set(host, jar);
      const res = await fetch(url, {
        redirect: 'manual',
        headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const i = pair.indexOf('=');
        jar.set(pair.slice(0, i), pair.slice(i + 1));
      }
      if (res.status < 300 || res.status > 399) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
      url = new URL(res.headers.get('location'), url).href;
    }
    throw new Error('too many redirects');
  };
}

function verify(jwt, jwks, secret) {
  const [h, p, s] = jwt.split('.');
  const { alg, kid } = b64json(h);
  const input = Buffer.from(`${h}.${p}`);
  if (alg === 'HS256') {
    return crypto.createHmac('sha256', secret).update(input).digest('base64url') === s;
  }
  if (alg === 'RS256') {
    const jwk = jwks.keys.find((k) => k.kid === kid);
    return Boolean(jwk) && crypto.verify('RSA-SHA256', input, crypto.createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
  }
  return false;
}

try {
  let disco;
  await check('discovery at the PSC path and the standard one', async () => {
    disco = await (await fetch(`${ISSUER}/.well-known/wallet-openid-configuration`)).json();
    const std = await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json();
    assert.deepEqual(disco, std);
    assert.equal(disco.issuer, ISSUER);
    assert.equal(disco.authorization_endpoint, `http://localhost:${port}/auth`);
    assert.equal(disco.token_endpoint, `${ISSUER}/protocol/openid-connect/token`);
    assert.equal(disco.userinfo_endpoint, `${ISSUER}/protocol/openid-connect/userinfo`);
    assert.equal(disco.jwks_uri, `${ISSUER}/protocol/openid-connect/certs`);
    assert.equal(disco.end_session_endpoint, `${ISSUER}/protocol/openid-connect/logout`);
    assert.deepEqual(disco.acr_values_supported, ['eidas1']);
    assert.deepEqual(disco.code_challenge_methods_supported, ['S256']);
    // Mutual TLS only with --mtls-url.
    assert.equal(disco.mtls_endpoint_aliases, undefined);
    assert.ok(!disco.token_endpoint_auth_methods_supported.includes('tls_client_auth'));
  });
  const jwks = await (await fetch(disco.jwks_uri)).json();

  await check('national ids are Luhn-valid RPPS numbers', async () => {
    const accounts = await (await fetch(`${BASE}/__test/accounts`)).json();
    for (const a of accounts.filter((x) => /^8\d{11}$/.test(x.nationalId))) assert.ok(luhnValid(a.nationalId.slice(1)), a.nationalId);
    assert.ok(accounts.length >= 6);
  });

  async function register(meta) {
    const { status, body } = await postJson(disco.registration_endpoint, {
      redirect_uris: [REDIRECT], post_logout_redirect_uris: ['http://127.0.0.1:9/bye'],
      token_endpoint_auth_method: 'client_secret_basic', ...meta,
    });
    assert.equal(status, 201, JSON.stringify(body));
    return body;
  }

  async function login(client, { loginHint, go = browser(), extra = {} } = {}) {
    const verifier = crypto.randomBytes(32).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const params = new URLSearchParams({
      response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT, scope: 'openid scope_all',
      acr_values: 'eidas1', state: 'st', nonce: 'nn', code_challenge: challenge, code_challenge_method: 'S256',
      ...(loginHint ? { login_hint: loginHint } : {}), ...extra,
    });
    const back = await go(`${disco.authorization_endpoint}?${params}`, REDIRECT);
    assert.equal(back.searchParams.get('state'), 'st', back.href);
    const res = await fetch(disco.token_endpoint, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: back.searchParams.get('code'), redirect_uri: REDIRECT, code_verifier: verifier }),
    });
    const token = await res.json();
    assert.equal(res.status, 200, JSON.stringify(token));
    const ui = await fetch(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${token.access_token}` } });
    const userinfo = ui.headers.get('content-type').startsWith('application/jwt') ? await ui.text() : await ui.json();
    return { token, userinfo, go };
  }

  const rs = await register({ id_token_signed_response_alg: 'RS256' });
  const hs = await register({ id_token_signed_response_alg: 'HS256', userinfo_signed_response_alg: 'HS256' });
  const rsJwt = await register({ id_token_signed_response_alg: 'RS256', userinfo_signed_response_alg: 'RS256' });

  await check('RS256 login, default account, JSON userinfo', async () => {
    const { token, userinfo } = await login(rs);
    const { payload } = decode(token.id_token);
    assert.ok(verify(token.id_token, jwks));
    assert.equal(payload.iss, ISSUER);
    assert.equal(payload.aud, rs.client_id);
    assert.equal(payload.acr, 'eidas1');
    assert.equal(payload.nonce, 'nn');
    assert.equal(typeof payload.auth_time, 'number');
    assert.match(payload.sub, /^f:[0-9a-f-]{36}:899700000013$/);
    assert.equal(userinfo.SubjectNameID, '899700000013');
    assert.equal(userinfo.authMode, 'CARD');
    assert.ok(Array.isArray(userinfo.otherIds));
    assert.equal(userinfo.SubjectRefPro.exercices[0].codeProfession, '10');
  });

  await check('PKCE is required', async () => {
    const params = new URLSearchParams({ response_type: 'code', client_id: rs.client_id, redirect_uri: REDIRECT, scope: 'openid scope_all' });
    const back = await browser()(`${disco.authorization_endpoint}?${params}`, REDIRECT);
    assert.equal(back.searchParams.get('error'), 'invalid_request');
  });

  await check('HS256 ID token and HS256 userinfo, login_hint picks the MOBILE account', async () => {
    const { token, userinfo } = await login(hs, { loginHint: '899700000021' });
    assert.ok(verify(token.id_token, jwks, hs.client_secret));
    assert.ok(verify(userinfo, jwks, hs.client_secret));
    const ui = decode(userinfo).payload;
    assert.equal(ui.SubjectNameID, '899700000021');
    assert.equal(ui.authMode, 'MOBILE');
    assert.ok(Array.isArray(ui.otherIDs));
  });

  await check('login_hint switches account in the same browser; next-account', async () => {
    const go = browser();
    let r = await login(rsJwt, { go, loginHint: '0123456789' });
    assert.ok(verify(r.userinfo, jwks));
    assert.equal(decode(r.userinfo).payload.SubjectNameID, '0123456789');
    r = await login(rsJwt, { go, loginHint: '8ABC' });
    assert.equal(decode(r.userinfo).payload.SubjectNameID, '8ABC');
    r = await login(rsJwt, { go }); // same session: single sign-on, no interaction
    assert.equal(decode(r.userinfo).payload.SubjectNameID, '8ABC');
    assert.equal((await postJson(`${BASE}/__test/next-account`, { national_id: '899700000039', client_id: rs.client_id })).status, 204);
    r = await login(rs);
    assert.equal(r.userinfo.Unknown_Claim, 'surprise');
    r = await login(rs, { loginHint: '899700000047' });
    assert.equal(r.userinfo.given_name, undefined);
  });

  await check('unknown login_hint is refused with access_denied', async () => {
    const params = new URLSearchParams({
      response_type: 'code', client_id: rs.client_id, redirect_uri: REDIRECT, scope: 'openid scope_all', state: 's',
      code_challenge: 'a'.repeat(43), code_challenge_method: 'S256', login_hint: '899999999999',
    });
    const back = await browser()(`${disco.authorization_endpoint}?${params}`, REDIRECT);
    assert.equal(back.searchParams.get('error'), 'access_denied');
  });

  const fault = (clientId, body) => postJson(`${BASE}/__test/faults`, { client_id: clientId, ...body });

  await check('claim faults (iss, aud, nonce, acr, SubjectNameID), one shot', async () => {
    await fault(rs.client_id, { id_token: { claims: { iss: 'https://evil', aud: 'other', nonce: 'x', acr: 'eidas2', SubjectNameID: null } } });
    let { payload } = decode((await login(rs)).token.id_token);
    assert.deepEqual([payload.iss, payload.aud, payload.nonce, payload.acr, payload.SubjectNameID], ['https://evil', 'other', 'x', 'eidas2', undefined]);
    const next = await login(rs);
    ({ payload } = decode(next.token.id_token));
    assert.ok(verify(next.token.id_token, jwks));
    assert.equal(payload.iss, ISSUER);
  });

  await check('expired ID token, still validly signed', async () => {
    await fault(rs.client_id, { id_token: { expired: true } });
    const { token } = await login(rs);
    assert.ok(verify(token.id_token, jwks));
    assert.ok(decode(token.id_token).payload.exp < Date.now() / 1000 - 300);
  });

  for (const alg of ['none', 'HS256-wrong-secret', 'HS256-with-rsa-public-key', 'RS256-wrong-key']) {
    await check(`alg fault ${alg} does not verify`, async () => {
      await fault(rs.client_id, { id_token: { alg } });
      const { token } = await login(rs);
      assert.equal(decode(token.id_token).header.alg, alg === 'none' ? 'none' : alg.slice(0, 5));
      assert.equal(verify(token.id_token, jwks, rs.client_secret), false);
    });
  }

  await check('userinfo faults: JSON sub, signed JWT claims re-signed', async () => {
    await fault(rs.client_id, { userinfo: { sub: 'other' } });
    let r = await login(rs);
    assert.equal(r.userinfo.sub, 'other');
    assert.notEqual(decode(r.token.id_token).payload.sub, 'other');
    await fault(hs.client_id, { userinfo: { claims: { SubjectNameID: '8ABC' } } });
    r = await login(hs);
    assert.ok(verify(r.userinfo, jwks, hs.client_secret));
    assert.equal(decode(r.userinfo).payload.SubjectNameID, '8ABC');
  });

  await check('token endpoint error fault', async () => {
    await fault(rs.client_id, { token: { status: 503 } });
    await assert.rejects(login(rs), /503|invalid_grant/);
  });

  await check('logout redirects straight to post_logout_redirect_uri with state', async () => {
    const { token } = await login(rs);
    const params = new URLSearchParams({ id_token_hint: token.id_token, post_logout_redirect_uri: 'http://127.0.0.1:9/bye', state: 'bye' });
    const back = await browser()(`${disco.end_session_endpoint}?${params}`, 'http://127.0.0.1:9/bye');
    assert.equal(back.searchParams.get('state'), 'bye');
  });

  await check('static client espace-ps-test exists', async () => {
    const params = new URLSearchParams({
      response_type: 'code', client_id: 'espace-ps-test', redirect_uri: 'http://127.0.0.1:18080/auth/callback',
      scope: 'openid scope_all', state: 's', code_challenge: 'a'.repeat(43), code_challenge_method: 'S256',
    });
    const back = await browser()(`${disco.authorization_endpoint}?${params}`, 'http://127.0.0.1:18080/');
    assert.ok(back.searchParams.get('code'));
  });
  await check('mutual TLS (--mtls-url): discovery, registration, terminator headers', async () => {
    // No TLS terminator here: the check plays nginx's part by sending its
    // headers, with and without the shared secret.
    const mtlsPort = await freePort();
    const secret = crypto.randomBytes(24).toString('hex');
    await startServer(mtlsPort, ['--mtls-url', 'https://127.0.0.1:1'], { OIDC_MTLS_TERMINATOR_SECRET: secret });
    const issuer = `http://127.0.0.1:${mtlsPort}/auth/realms/esante-wallet`;
    for (const path of ['wallet-openid-configuration', 'openid-configuration']) {
      const d = await (await fetch(`${issuer}/.well-known/${path}`)).json();
      assert.deepEqual(d.mtls_endpoint_aliases, {
        token_endpoint: 'https://127.0.0.1:1/auth/realms/esante-wallet/protocol/openid-connect/token',
      });
      assert.ok(d.token_endpoint_auth_methods_supported.includes('tls_client_auth'));
    }
    const reg = (dn) => postJson(`${issuer}/clients-registrations/openid-connect`, {
      redirect_uris: [REDIRECT], token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: dn,
    });
    const mine = await reg(SELFTEST_CERT_DN);
    assert.equal(mine.status, 201, JSON.stringify(mine.body));
    assert.equal(mine.body.client_secret, undefined);
    const theirs = await reg('CN=someone-else,O=Espace PS Test,C=FR');
    assert.equal(theirs.status, 201);
    // A made-up code: invalid_grant once the client is authenticated.
    const probe = async (clientId, headers) => {
      const res = await fetch(`${issuer}/protocol/openid-connect/token`, {
        method: 'POST',
        headers,
        body: new URLSearchParams({ grant_type: 'authorization_code', code: 'nope', client_id: clientId, redirect_uri: REDIRECT }),
      });
      return (await res.json()).error;
    };
    const cert = { 'x-ssl-client-cert': encodeURIComponent(SELFTEST_CERT), 'x-ssl-client-verify': 'SUCCESS' };
    const trusted = { ...cert, 'x-mtls-terminator-secret': secret };
    assert.equal(await probe(mine.body.client_id, trusted), 'invalid_grant');
    assert.equal(await probe(mine.body.client_id, cert), 'invalid_client'); // no secret
    assert.equal(await probe(mine.body.client_id, { ...trusted, 'x-mtls-terminator-secret': 'x'.repeat(48) }), 'invalid_client');
    assert.equal(await probe(mine.body.client_id, { ...trusted, 'x-ssl-client-verify': 'FAILED:unknown ca' }), 'invalid_client');
    assert.equal(await probe(mine.body.client_id, { 'x-mtls-terminator-secret': secret }), 'invalid_client'); // no cert
    assert.equal(await probe(theirs.body.client_id, trusted), 'invalid_client'); // other DN
  });

  console.log(`selftest: ${passed} checks passed`);
} finally {
  current = 'stopping the providers';
  const stops = await Promise.all(children.map(stopped));
  if (stops.includes(false)) {
    console.error(`selftest: FAILED, a provider did not stop within ${STOP_MS / 1000} s of SIGTERM (killed)`);
    process.exitCode = 1;
  }
}
