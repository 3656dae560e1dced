// A Pro Santé Connect (PSC) look-alike OpenID provider for espace-ps
// integration tests, built on node-oidc-provider (an independent, certified
// implementation). Usage: node server.mjs --port PORT   (binds 127.0.0.1)
//   [--mtls-url https://127.0.0.1:TLSPORT]  with OIDC_MTLS_TERMINATOR_SECRET
//   set: mutual TLS client authentication (tls_client_auth, RFC 8705) behind
//   a TLS terminator at that URL (README.md, "Mutual TLS").
//
// PSC quirks reproduced (see /work/shared/design/pro-sante-connect.md):
// - issuer http://127.0.0.1:PORT/auth/realms/esante-wallet, Keycloak paths
//   (protocol/openid-connect/{token,userinfo,certs,logout});
// - discovery at {issuer}/.well-known/wallet-openid-configuration (the
//   standard path works too);
// - the authorization endpoint on another host name: http://localhost:PORT/auth;
// - acr "eidas1", PKCE S256 required, scopes "openid scope_all", PSC claims,
//   Keycloak-style sub "f:<uuid>:<national id>".
// There is no login page: /interaction/:uid signs the chosen account in and
// grants consent at once. /__test/* is a control API (README.md).

import crypto from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { interactionPolicy } from 'oidc-provider';

import { ACCOUNTS, SCOPE_ALL_CLAIMS, subFor } from './accounts.mjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '18090' },
    'mtls-url': { type: 'string' },
  },
});
const PORT = Number(args.port);
const VERBOSE = Boolean(process.env.OIDC_PROVIDER_LOG);
const REALM_PATH = '/auth/realms/esante-wallet';
const ISSUER = `http://127.0.0.1:${PORT}${REALM_PATH}`;
// PSC serves the authorization endpoint from wallet.* and the rest from auth.*.
const AUTHORIZE_URL = `http://localhost:${PORT}/auth`;

// ---------------------------------------------------------------- mutual TLS

// With --mtls-url, a TLS terminator (nginx in scripts/test.sh) listens there,
// verifies client certificates and forwards requests here with the
// certificate in X-SSL-Client-Cert (URL-encoded PEM, nginx's
// $ssl_client_escaped_cert) and the verification result in
// X-SSL-Client-Verify ($ssl_client_verify: SUCCESS, FAILED:…, NONE). Those
// headers are believed only on a loopback connection that also carries the
// terminator's shared secret (OIDC_MTLS_TERMINATOR_SECRET) in
// X-Mtls-Terminator-Secret: a client talking to this port directly cannot
// claim a certificate.
const MTLS_URL = args['mtls-url']?.replace(/\/+$/, '');
const MTLS_SECRET = process.env.OIDC_MTLS_TERMINATOR_SECRET || '';
if (MTLS_URL) {
  if (!/^https:\/\//.test(MTLS_URL)) throw new Error('--mtls-url must be an https:// URL');
  if (MTLS_SECRET.length < 16) {
    throw new Error('--mtls-url needs OIDC_MTLS_TERMINATOR_SECRET (16 characters or more) in the environment');
  }
}
const MTLS_TOKEN_ENDPOINT = MTLS_URL && `${MTLS_URL}${REALM_PATH}/protocol/openid-connect/token`;

function fromTrustedTerminator(ctx) {
  if (!MTLS_URL) return false;
  const remote = ctx.req.socket.remoteAddress || '';
  if (!['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(remote)) return false;
  const given = Buffer.from(ctx.get('x-mtls-terminator-secret'));
  const want = Buffer.from(MTLS_SECRET);
  return given.length === want.length && crypto.timingSafeEqual(given, want);
}

// The PEM client certificate the terminator saw, or undefined.
function clientCertificate(ctx) {
  if (!fromTrustedTerminator(ctx)) return undefined;
  const escaped = ctx.get('x-ssl-client-cert');
  if (!escaped) return undefined;
  try {
    return decodeURIComponent(escaped);
  } catch {
    return undefined;
  }
}

// RFC 4514 string of a certificate's subject (node lists the RDNs
// most-significant first, one a line; RFC 4514 reverses them). Enough for
// the simple DNs of the tests (no multi-valued RDNs, no escaping).
function subjectDn(pem) {
  return new crypto.X509Certificate(pem).subject.split('\n').reverse().join(',');
}
const normalizeDn = (dn) => dn.split(',').map((rdn) => rdn.trim()).join(',');

// ---------------------------------------------------------------- keys

// RS256 signing key, generated at startup; the private half is kept here to
// re-sign tokens when a fault is injected.
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const KID = crypto.randomBytes(8).toString('hex');
const signingJwk = { ...rsa.privateKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' };
// A second key, not published: signatures made with it must not verify.
const rogueKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

// ---------------------------------------------------------------- accounts

const accounts = new Map(); // national id -> { nationalId, sub, claims }
function putAccount(nationalId, claims) {
  accounts.set(nationalId, { nationalId, sub: subFor(nationalId), claims });
}
ACCOUNTS.forEach((a) => putAccount(a.nationalId, a.claims));
const accountBySub = (sub) => [...accounts.values()].find((a) => a.sub === sub);

// ---------------------------------------------------------------- test state

const faults = new Map(); // client_id -> { id_token?, userinfo?, token? }, one-shot parts
const nextAccounts = new Map(); // client_id or "*" -> national id, one-shot

function takeFault(clientId, part) {
  const f = faults.get(clientId);
  if (!f || !f[part]) return undefined;
  const value = f[part];
  delete f[part];
  if (!f.id_token && !f.userinfo && !f.token) faults.delete(clientId);
  return value;
}

// ---------------------------------------------------------------- JWT helpers

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString()),
  };
}

// Signs `payload` the way `mode` says: RS256 / HS256 (the client secret) as
// the client expects, or one of the faulty modes.
function signJwt(header, payload, mode, clientSecret) {
  const hmac = (key, input) => crypto.createHmac('sha256', key).update(input).digest('base64url');
  const rsaSign = (key, input) => crypto.sign('RSA-SHA256', Buffer.from(input), key).toString('base64url');
  const alg = mode === 'none' ? 'none' : mode.slice(0, 5);
  const h = { ...header, alg };
  if (alg === 'RS256') h.kid = KID;
  else delete h.kid;
  const input = `${b64u(h)}.${b64u(payload)}`;
  switch (mode) {
    case 'RS256': return `${input}.${rsaSign(rsa.privateKey, input)}`;
    case 'RS256-wrong-key': return `${input}.${rsaSign(rogueKey, input)}`;
    case 'HS256': return `${input}.${hmac(clientSecret, input)}`;
    case 'HS256-wrong-secret': return `${input}.${hmac('wrong-secret-0123456789abcdef0123456789', input)}`;
    case 'HS256-with-rsa-public-key':
      return `${input}.${hmac(rsa.publicKey.export({ type: 'spki', format: 'pem' }), input)}`;
    case 'none': return `${input}.`;
    default: throw new Error(`unknown alg fault ${mode}`);
  }
}

// Applies a fault description ({claims, sub, expired}) to a claim set.
function applyClaims(payload, fault) {
  for (const [k, v] of Object.entries(fault.claims || {})) {
    if (v === null) delete payload[k];
    else payload[k] = v;
  }
  if (fault.sub !== undefined) payload.sub = fault.sub;
  if (fault.expired) {
    const now = Math.floor(Date.now() / 1000);
    payload.iat = now - 1200;
    payload.exp = now - 600;
    if ('auth_time' in payload) payload.auth_time = now - 1200;
  }
  return payload;
}

function rewriteJwt(jwt, fault, clientSecret) {
  const { header, payload } = decodeJwt(jwt);
  return signJwt(header, applyClaims(payload, fault), fault.alg || header.alg, clientSecret);
}

// ---------------------------------------------------------------- provider

const { Check } = interactionPolicy;
const policy = interactionPolicy.base();
// A login_hint naming another account than the session's forces a new login.
policy.get('login').checks.add(new Check(
  'login_hint_other_account',
  'login_hint names another account than the signed-in one',
  (ctx) => {
    const account = accounts.get(ctx.oidc.params.login_hint);
    const current = ctx.oidc.session.accountId;
    return account && current && account.sub !== current ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
  },
));

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: 'espace-ps-test',
    client_secret: 'test-secret-0123456789abcdef0123456789',
    redirect_uris: ['http://127.0.0.1:18080/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:18080/'],
    grant_types: ['authorization_code', 'refresh_token'],
  }],
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    require_auth_time: true, // PSC ID tokens always carry auth_time
  },
  jwks: { keys: [signingJwk] },
  // node-oidc-provider's default list, plus tls_client_auth with --mtls-url.
  clientAuthMethods: [
    'client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none',
    ...(MTLS_URL ? ['tls_client_auth'] : []),
  ],
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'HS256'],
    userinfoSigningAlgValues: ['RS256', 'HS256'],
  },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true }, // open: no initial access token
    jwtUserinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    revocation: { enabled: true },
    mTLS: {
      enabled: Boolean(MTLS_URL),
      tlsClientAuth: true,
      certificateBoundAccessTokens: false,
      getCertificate: clientCertificate,
      // The terminator checked the chain against the test CA.
      certificateAuthorized: (ctx) => fromTrustedTerminator(ctx) && ctx.get('x-ssl-client-verify') === 'SUCCESS',
      certificateSubjectMatches(ctx, property, expected) {
        const pem = clientCertificate(ctx);
        if (!pem || property !== 'tls_client_auth_subject_dn') return false;
        return normalizeDn(subjectDn(pem)) === normalizeDn(expected);
      },
    },
  },
  acrValues: ['eidas1'],
  scopes: ['openid', 'scope_all', 'offline_access'],
  claims: { openid: ['sub'], scope_all: SCOPE_ALL_CLAIMS },
  conformIdTokenClaims: false, // like Keycloak: scope claims in the ID token too
  pkce: { required: () => true }, // S256 is the only method offered
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(ctx, sub) {
    const account = accountBySub(sub);
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ ...structuredClone(account.claims), sub }) };
  },
  interactions: { policy, url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  routes: {
    authorization: '/auth', // served on the "wallet" host (localhost) at the root
    token: '/protocol/openid-connect/token',
    userinfo: '/protocol/openid-connect/userinfo',
    jwks: '/protocol/openid-connect/certs',
    end_session: '/protocol/openid-connect/logout',
    revocation: '/protocol/openid-connect/revoke',
    introspection: '/protocol/openid-connect/token/introspect',
    registration: '/clients-registrations/openid-connect',
    pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
  },
  ttl: {
    AccessToken: 120, // PSC: about 2 minutes
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 1800,
    Interaction: 600,
    Session: 4 * 3600,
    Grant: 4 * 3600,
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

// PSC quirks and fault injection, applied to the provider's responses.
provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route;
  const client = ctx.oidc?.client;
  if (VERBOSE) console.log(`${ctx.method} ${ctx.host}${ctx.originalUrl} -> ${ctx.status} (${route || '-'})`);

  if (route === 'discovery' && ctx.status === 200) {
    ctx.body = { ...ctx.body, authorization_endpoint: AUTHORIZE_URL };
    // RFC 8705: the token endpoint that asks for a client certificate.
    if (MTLS_TOKEN_ENDPOINT) ctx.body.mtls_endpoint_aliases = { token_endpoint: MTLS_TOKEN_ENDPOINT };
  } else if (route === 'token' && client) {
    const tokenFault = takeFault(client.clientId, 'token');
    if (tokenFault) {
      ctx.status = tokenFault.status || 400;
      ctx.body = tokenFault.body || { error: 'invalid_grant', error_description: 'injected fault' };
      return;
    }
    if (ctx.status === 200 && ctx.body?.id_token) {
      const fault = takeFault(client.clientId, 'id_token');
      if (fault) ctx.body = { ...ctx.body, id_token: rewriteJwt(ctx.body.id_token, fault, client.clientSecret) };
    }
  } else if (route === 'userinfo' && client && ctx.status === 200) {
    const fault = takeFault(client.clientId, 'userinfo');
    if (!fault) return;
    if (fault.status) {
      ctx.status = fault.status;
      ctx.body = { error: 'server_error', error_description: 'injected fault' };
    } else if (typeof ctx.body === 'string') {
      ctx.body = rewriteJwt(ctx.body, fault, client.clientSecret);
      ctx.type = 'application/jwt; charset=utf-8';
    } else {
      ctx.body = applyClaims({ ...ctx.body }, fault);
    }
  } else if ((route === 'end_session' || route === 'resume') && ctx.method === 'GET' && ctx.status === 200) {
    // end_session: logout confirmation page; resume: signing another account
    // in ends the current session first, through the same confirmation.
    await autoConfirmLogout(ctx);
  }
});

// node-oidc-provider asks the user to confirm a logout (an HTML form, posted
// by JavaScript); Keycloak (PSC) does not. Submit the form on the user's
// behalf and answer with the resulting redirect (post_logout_redirect_uri
// ?state=…, or back to the authorization resume), so that a plain HTTP
// client following redirects gets through.
async function autoConfirmLogout(ctx) {
  const xsrf = ctx.oidc.session?.state?.secret;
  if (!xsrf) return;
  const jar = new Map();
  const remember = (pair) => {
    const i = pair.indexOf('=');
    if (i > 0) jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
  };
  (ctx.get('cookie') || '').split(';').forEach(remember);
  [].concat(ctx.response.headers['set-cookie'] || []).forEach((c) => remember(c.split(';')[0]));
  const { pathname } = new URL(ctx.oidc.urlFor('end_session_confirm'));
  const res = await fetch(`http://127.0.0.1:${PORT}${pathname}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    body: new URLSearchParams({ xsrf, logout: 'yes' }),
  });
  ctx.response.remove('set-cookie');
  const setCookies = res.headers.getSetCookie();
  if (setCookies.length) ctx.set('set-cookie', setCookies);
  ctx.redirect(res.headers.get('location'));
  ctx.status = 303;
}

// ---------------------------------------------------------------- interaction

// Signs in the account named by login_hint, else the one set with
// /__test/next-account, else the session's, else the first account; grants
// the requested scopes; redirects back to the authorization resume endpoint.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { params, session, prompt } = details;
  const clientId = params.client_id;
  let nationalId = params.login_hint;
  if (!nationalId) {
    for (const key of [clientId, '*']) {
      if (!nationalId && nextAccounts.has(key)) {
        nationalId = nextAccounts.get(key);
        nextAccounts.delete(key);
      }
    }
  }
  let account;
  if (nationalId) account = accounts.get(nationalId);
  else account = (session?.accountId && accountBySub(session.accountId)) || accounts.values().next().value;

  if (!account) {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: `unknown account ${nationalId}`,
    }, { mergeWithLastSubmission: false });
    return;
  }

  const grant = new provider.Grant({ accountId: account.sub, clientId });
  grant.addOIDCScope(params.scope || 'openid scope_all');
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();

  await provider.interactionFinished(req, res, {
    login: { accountId: account.sub, acr: 'eidas1' },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------- control API

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString();
  return text ? JSON.parse(text) : {};
}

async function control(req, res, url) {
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /__test/health':
      return sendJson(res, 200, { status: 'ok', issuer: ISSUER });
    case 'GET /__test/accounts':
      return sendJson(res, 200, [...accounts.values()]);
    case 'POST /__test/accounts': { // { national_id, claims }: add or replace
      const body = await readJson(req);
      if (!body.national_id) return sendJson(res, 400, { error: 'national_id required' });
      putAccount(body.national_id, body.claims || {});
      return sendJson(res, 200, accounts.get(body.national_id));
    }
    case 'POST /__test/next-account': { // { national_id, client_id? }
      const body = await readJson(req);
      if (!accounts.has(body.national_id)) return sendJson(res, 404, { error: 'unknown national_id' });
      nextAccounts.set(body.client_id || '*', body.national_id);
      return sendJson(res, 204);
    }
    case 'POST /__test/faults': { // { client_id, id_token?, userinfo?, token? }
      const { client_id: clientId, ...parts } = await readJson(req);
      if (!clientId) return sendJson(res, 400, { error: 'client_id required' });
      faults.set(clientId, { ...faults.get(clientId), ...parts });
      return sendJson(res, 204);
    }
    case 'GET /__test/faults':
      return sendJson(res, 200, Object.fromEntries(faults));
    case 'DELETE /__test/faults':
      if (url.searchParams.get('client_id')) faults.delete(url.searchParams.get('client_id'));
      else faults.clear();
      return sendJson(res, 204);
    default:
      return sendJson(res, 404, { error: `no control route ${route}` });
  }
}

// ---------------------------------------------------------------- HTTP server

const providerCallback = provider.callback();

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname.startsWith('/__test/')) {
      await control(req, res, url);
      return;
    }
    if (url.pathname.startsWith('/interaction/')) {
      if (VERBOSE) console.log(`${req.method} ${req.headers.host}${req.url} (interaction)`);
      await interaction(req, res);
      return;
    }
    if (url.pathname === REALM_PATH || url.pathname.startsWith(`${REALM_PATH}/`)) {
      // Mount the provider under the realm path; it derives its URLs from
      // req.originalUrl / req.baseUrl.
      let rest = url.pathname.slice(REALM_PATH.length) || '/';
      if (rest === '/.well-known/wallet-openid-configuration') rest = '/.well-known/openid-configuration';
      req.originalUrl = req.url;
      req.baseUrl = REALM_PATH;
      req.url = rest + url.search;
    }
    // Everything else (notably /auth and /auth/:uid, the authorization
    // endpoint on the "wallet" host) goes to the provider unprefixed.
    providerCallback(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err.message || err) });
    else res.end();
  }
});

server.listen(PORT, '127.0.0.1', () => {
  console.log(`oidc-provider ready on http://127.0.0.1:${PORT}`);
  if (MTLS_URL) console.log(`mutual TLS token endpoint: ${MTLS_TOKEN_ENDPOINT}`);
});

// On SIGINT or SIGTERM: no new connection, idle keep-alive ones closed at
// once, and an exit within 2 s even if a client holds a connection open
// (a test peer has nothing to drain; its stop must not wait on a client).
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => {
      server.closeAllConnections();
      process.exit(0);
    }, 2_000).unref();
  });
}
