// Gateway interop: tokengate's gateway in front of a real HTTP upstream (interop/upstream.mjs),
// trusting two third-party issuers: node-oidc-provider (interop/oidc_provider.mjs, keys found
// by discovery) and a "partner" whose tokens Node `jose` signs here (keys from a JWKS file).
//
//   node interop/gateway.mjs partner-key DIR
//   node interop/gateway.mjs check GATEWAY OIDC_ISSUER UPSTREAM DIR
//
// `partner-key` makes the partner's ES256 key with jose and writes DIR/partner-private.json
// (the private JWK) and DIR/partner-jwks.json (the JWK Set tokengate is given).
// `check` runs the checks against the gateway at GATEWAY, whose route /api/ forwards to
// UPSTREAM with the prefix stripped, for audience https://api.example, scope read required,
// `sub` forwarded as x-user-id and `scope` as x-scopes (interop/gateway_run.sh writes that
// configuration). DIR also holds oidc-client.json ({client_id, client_secret}, the client
// registered at OIDC_ISSUER).
// Prints one line per check (`ok - name` / `FAIL - name: reason`), then `N passed, M failed`.
// Exit status: 0 all passed, 1 a check failed or the number of checks is not the one
// interop/expected.json pins for "gateway" (see checks.mjs), 2 bad arguments.

import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as client from 'openid-client';
import * as jose from 'jose';
import { assert, assertEqual, now, runChecks } from './checks.mjs';

const API = 'https://api.example';
const PARTNER = 'https://partner.example';
const PARTNER_KID = 'partner-es256';

const [op, ...args] = process.argv.slice(2);

if (op === 'partner-key' && args.length === 1) {
  const [dir] = args;
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const priv = { ...(await jose.exportJWK(privateKey)), kid: PARTNER_KID, alg: 'ES256', use: 'sig' };
  const pub = { ...(await jose.exportJWK(publicKey)), kid: PARTNER_KID, alg: 'ES256', use: 'sig' };
  writeFileSync(join(dir, 'partner-private.json'), `${JSON.stringify(priv)}\n`);
  writeFileSync(join(dir, 'partner-jwks.json'), `${JSON.stringify({ keys: [pub] })}\n`);
  process.exit(0);
}
if (op !== 'check' || args.length !== 4) {
  console.error('usage: node interop/gateway.mjs partner-key DIR\n'
    + '       node interop/gateway.mjs check GATEWAY OIDC_ISSUER UPSTREAM DIR');
  process.exit(2);
}

const [gateway, oidcIssuer, upstream, dir] = args;
const oidcClient = JSON.parse(readFileSync(join(dir, 'oidc-client.json'), 'utf8'));
const partnerJwk = JSON.parse(readFileSync(join(dir, 'partner-private.json'), 'utf8'));
const partnerKey = await jose.importJWK(partnerJwk, 'ES256');
const partnerPublicJwk = JSON.parse(readFileSync(join(dir, 'partner-jwks.json'), 'utf8')).keys[0];

// How many requests the upstream has answered (asked of it directly, not counted).
async function upstreamSeen() {
  const res = await fetch(`${upstream}/_interop/count`);
  return (await res.json()).seen;
}

// GET through the gateway. Returns {status, headers, text, echo} where `echo` is what the
// upstream says it received (when the answer came from the upstream).
async function get(path, { token, headers = {} } = {}) {
  const h = new Headers(headers);
  if (token !== undefined) h.set('authorization', `Bearer ${token}`);
  const res = await fetch(`${gateway}${path}`, { headers: h });
  const text = await res.text();
  let echo;
  if (res.headers.get('content-type')?.startsWith('application/json')) {
    try {
      const body = JSON.parse(text);
      if (body && typeof body === 'object' && 'rawHeaders' in body) echo = body;
    } catch {
      // not the upstream's answer
    }
  }
  return { status: res.status, headers: res.headers, text, echo };
}

// The values the upstream received for header `name` (lower case), one per header line.
function received(echo, name) {
  const values = [];
  for (let i = 0; i + 1 < echo.rawHeaders.length; i += 2) {
    if (echo.rawHeaders[i].toLowerCase() === name) values.push(echo.rawHeaders[i + 1]);
  }
  return values;
}

// A request tokengate must forward: 200 from the upstream, on the stripped path, with the
// token's claims as headers and no authorization header.
async function expectForwarded(path, token, { upstreamPath, userId, scopes, headers }) {
  const res = await get(path, { token, headers });
  assertEqual(res.status, 200, `status (body ${res.text.slice(0, 300)})`);
  assert(res.echo, `the answer is not the upstream's: ${res.text.slice(0, 300)}`);
  const { echo } = res;
  assertEqual(echo.method, 'GET', 'method at the upstream');
  assertEqual(echo.url, upstreamPath, 'path at the upstream');
  assertEqual(received(echo, 'x-user-id'), userId === undefined ? [] : [userId], 'x-user-id at the upstream');
  assertEqual(received(echo, 'x-scopes'), [scopes], 'x-scopes at the upstream');
  assertEqual(received(echo, 'authorization'), [], 'authorization at the upstream (forward_token none)');
  assert(received(echo, 'x-request-id').length === 1, 'no x-request-id at the upstream');
  const xff = received(echo, 'x-forwarded-for');
  assert(xff.length === 1 && xff[0].split(',').map((s) => s.trim()).includes('127.0.0.1'),
    `x-forwarded-for at the upstream: ${JSON.stringify(xff)}`);
  return echo;
}

// The parameters of a Bearer challenge (RFC 6750 §3), or null for another scheme.
function bearerChallenge(value) {
  if (!value || !/^Bearer\s/i.test(value)) return null;
  const params = {};
  for (const m of value.slice(7).matchAll(/([A-Za-z_]+)="([^"]*)"/g)) params[m[1]] = m[2];
  return params;
}

// A request tokengate must refuse before the upstream: `status`, a Bearer challenge with
// realm "tokengate" and the `error` (none: no error parameter at all), and the upstream never
// reached.
async function expectRefused(token, { status, error, scope }) {
  const before = await upstreamSeen();
  const res = await get('/api/things', { token });
  const after = await upstreamSeen();
  assertEqual(res.status, status, `status (body ${res.text.slice(0, 300)})`);
  assertEqual(after, before, 'requests that reached the upstream');
  const www = res.headers.get('www-authenticate');
  const params = bearerChallenge(www);
  assert(params, `WWW-Authenticate is not a Bearer challenge: ${JSON.stringify(www)}`);
  assertEqual(params.realm, 'tokengate', 'realm');
  assertEqual(params.error, error, `error in WWW-Authenticate ${JSON.stringify(www)}`);
  if (scope !== undefined) assertEqual(params.scope, scope, `scope in WWW-Authenticate ${JSON.stringify(www)}`);
  return { res, params };
}

// The partner's RFC 9068 claims for alice, with `changes` applied (undefined removes one).
function partnerClaims(changes = {}) {
  const t = now();
  const claims = {
    iss: PARTNER,
    sub: 'alice',
    aud: API,
    scope: 'read write',
    client_id: 'partner-app',
    jti: randomUUID(),
    iat: t,
    exp: t + 300,
    ...changes,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

// A partner token signed by jose (SignJWT) with `key` (default the partner's).
async function partnerToken(changes, { key = partnerKey, header = {} } = {}) {
  return new jose.SignJWT(partnerClaims(changes))
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: PARTNER_KID, ...header })
    .sign(key);
}

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

// A JWT put together by hand: header and claims, signed (or not) by `sign(signingInput)`.
function handmade(header, claims, sign) {
  const input = `${b64url(header)}.${b64url(claims)}`;
  return `${input}.${sign(input)}`;
}

// State shared by the checks (later checks use what earlier ones obtained).
const s = {};

const checks = [
  ['oidc-provider: client_credentials token (resource=https://api.example, scope=read) is an ES256 at+jwt', async () => {
    const config = await client.discovery(
      new URL(oidcIssuer),
      oidcClient.client_id,
      oidcClient.client_secret,
      client.ClientSecretBasic(oidcClient.client_secret),
      { execute: [client.allowInsecureRequests] },
    );
    const res = await client.clientCredentialsGrant(config, { resource: API, scope: 'read' });
    assertEqual(res.token_type, 'bearer', 'token_type');
    const header = jose.decodeProtectedHeader(res.access_token);
    assertEqual(header.alg, 'ES256', 'alg');
    assertEqual(header.typ, 'at+jwt', 'typ');
    const claims = jose.decodeJwt(res.access_token);
    assertEqual(claims.iss, oidcIssuer, 'iss');
    assertEqual(claims.aud, API, 'aud');
    assertEqual(claims.scope, 'read', 'scope');
    assertEqual(claims.client_id, oidcClient.client_id, 'client_id');
    // For client_credentials oidc-provider makes the client the subject.
    assertEqual(claims.sub, oidcClient.client_id, 'sub');
    s.oidcToken = res.access_token;
    s.oidcClaims = claims;
  }],

  ['oidc-provider token through the gateway (keys by discovery): 200, path /things, x-user-id = sub, no authorization', async () => {
    await expectForwarded('/api/things', s.oidcToken, {
      upstreamPath: '/things',
      userId: s.oidcClaims.sub,
      scopes: 'read',
    });
  }],

  ['oidc-provider token with a spoofed x-user-id: admin: the upstream sees only the token\'s sub', async () => {
    await expectForwarded('/api/things?q=1', s.oidcToken, {
      upstreamPath: '/things?q=1',
      userId: s.oidcClaims.sub,
      scopes: 'read',
      headers: { 'x-user-id': 'admin', 'x-scopes': 'admin' },
    });
  }],

  ['oidc-provider token again: served from the verified-token cache (tokengate_token_cache_hits_total grows)', async () => {
    const hits = async () => {
      const res = await fetch(`${gateway}/metrics`);
      assertEqual(res.status, 200, 'GET /metrics status');
      const m = (await res.text()).match(/^tokengate_token_cache_hits_total(?:\{[^}]*\})? (\d+)$/m);
      assert(m, 'no tokengate_token_cache_hits_total in /metrics');
      return Number(m[1]);
    };
    const before = await hits();
    await expectForwarded('/api/things', s.oidcToken, {
      upstreamPath: '/things',
      userId: s.oidcClaims.sub,
      scopes: 'read',
    });
    const after = await hits();
    assert(after >= 1 && after >= before + 1, `tokengate_token_cache_hits_total went from ${before} to ${after}`);
  }],

  ['partner token (jose SignJWT, keys from a JWKS file): 200, x-user-id alice, x-scopes "read write"', async () => {
    await expectForwarded('/api/users/alice', await partnerToken(), {
      upstreamPath: '/users/alice',
      userId: 'alice',
      scopes: 'read write',
      headers: { 'x-user-id': 'admin' },
    });
  }],

  ['partner token without the read scope: 403 insufficient_scope, scope="read"', async () => {
    await expectRefused(await partnerToken({ scope: 'write' }), { status: 403, error: 'insufficient_scope', scope: 'read' });
    await expectRefused(await partnerToken({ scope: undefined }), { status: 403, error: 'insufficient_scope', scope: 'read' });
  }],

  ['partner token for another audience: 401 invalid_token', async () => {
    await expectRefused(await partnerToken({ aud: 'https://other.example' }), { status: 401, error: 'invalid_token' });
  }],

  ['expired partner token (exp 2 minutes ago): 401 invalid_token', async () => {
    const t = now();
    await expectRefused(await partnerToken({ iat: t - 420, exp: t - 120 }), { status: 401, error: 'invalid_token' });
  }],

  ['partner token signed by another key (same kid): 401 invalid_token', async () => {
    const { privateKey } = await jose.generateKeyPair('ES256');
    await expectRefused(await partnerToken({}, { key: privateKey }), { status: 401, error: 'invalid_token' });
  }],

  ['partner-signed token claiming the oidc-provider issuer, and an unknown issuer: 401 invalid_token', async () => {
    await expectRefused(await partnerToken({ iss: oidcIssuer }), { status: 401, error: 'invalid_token' });
    await expectRefused(await partnerToken({ iss: 'https://unknown.example' }), { status: 401, error: 'invalid_token' });
  }],

  ['partner token with typ JWT instead of at+jwt (RFC 9068 §4): 401 invalid_token', async () => {
    await expectRefused(await partnerToken({}, { header: { typ: 'JWT' } }), { status: 401, error: 'invalid_token' });
  }],

  ['HS256 token keyed with the partner\'s public key (PEM, JWK): 401 invalid_token', async () => {
    const pem = await jose.exportSPKI(await jose.importJWK(partnerPublicJwk, 'ES256', { extractable: true }));
    const secrets = [pem, JSON.stringify(partnerPublicJwk), readFileSync(join(dir, 'partner-jwks.json'), 'utf8')];
    for (const secret of secrets) {
      const token = handmade({ alg: 'HS256', typ: 'at+jwt', kid: PARTNER_KID }, partnerClaims(),
        (input) => createHmac('sha256', secret).update(input).digest('base64url'));
      await expectRefused(token, { status: 401, error: 'invalid_token' });
    }
  }],

  ['alg none token (unsigned, empty and non-empty signature): 401 invalid_token', async () => {
    for (const alg of ['none', 'None', 'NONE']) {
      await expectRefused(handmade({ alg, typ: 'at+jwt', kid: PARTNER_KID }, partnerClaims(), () => ''),
        { status: 401, error: 'invalid_token' });
    }
    const signed = await partnerToken();
    const [, , signature] = signed.split('.');
    await expectRefused(handmade({ alg: 'none', typ: 'at+jwt' }, partnerClaims(), () => signature),
      { status: 401, error: 'invalid_token' });
  }],

  ['no token: 401 with a bare Bearer challenge (no error)', async () => {
    const { params } = await expectRefused(undefined, { status: 401, error: undefined });
    assertEqual(params.error_description, undefined, 'error_description');
  }],
];

await runChecks('gateway', checks);
