// OAuth client interop: Node `openid-client` (with `jose` for token verification) drives a
// running `tokengate serve` over HTTP, as a real machine-to-machine client would.
//
//   node interop/oauth.mjs ISSUER CLIENTS_JSON
//
// ISSUER is the server's issuer URL (http on loopback). CLIENTS_JSON is written by
// interop/oauth_run.sh: {"basic": {client_id, client_secret}, "post": {...},
// "pkjwt": {client_id}, "pkjwt_key": private JWK}, clients registered for the audiences below.
// Prints one line per check (`ok - name` / `FAIL - name: reason`), then `N passed, M failed`.
// Exit status: 0 all passed, 1 a check failed or the number of checks is not the one
// interop/expected.json pins for "oauth" (see checks.mjs), 2 bad arguments.

import { readFileSync } from 'node:fs';
import * as client from 'openid-client';
import * as jose from 'jose';
import { assert, assertEqual, now, runChecks } from './checks.mjs';

const API = 'https://api.example';
const SECRET_API = 'https://secret.example';
const UNKNOWN_API = 'https://unknown.example';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const [issuerArg, clientsFile, ...extra] = process.argv.slice(2);
if (!issuerArg || !clientsFile || extra.length) {
  console.error('usage: node interop/oauth.mjs ISSUER CLIENTS_JSON');
  process.exit(2);
}
const issuer = issuerArg;
const creds = JSON.parse(readFileSync(clientsFile, 'utf8'));

// Every HTTP exchange openid-client makes, so that checks can look at the wire (DPoP nonce
// retries, client assertions, raw token_type) and not only at what the library hands back.
const exchanges = [];
async function recordingFetch(url, options) {
  const response = await fetch(url, options);
  const body = options.body === undefined || options.body === null ? '' : String(options.body);
  exchanges.push({
    url: String(url),
    method: options.method,
    headers: new Headers(options.headers),
    body: new URLSearchParams(body),
    status: response.status,
    responseHeaders: response.headers,
    responseText: await response.clone().text(),
  });
  return response;
}

// Runs `fn` and returns the exchanges it made.
async function recorded(fn) {
  const start = exchanges.length;
  const result = await fn();
  return { result, wire: exchanges.slice(start) };
}

// A Configuration for one of the registered clients, from discovery, allowing http.
async function configure(clientId, metadata, auth, algorithm = 'oauth2') {
  return client.discovery(new URL(issuer), clientId, metadata, auth, {
    algorithm,
    execute: [client.allowInsecureRequests],
    [client.customFetch]: recordingFetch,
  });
}

// State shared by the checks (later checks use what earlier ones obtained).
const s = {};

let jwks;
// RFC 9068 §4: verify the access token as a resource server would, from the JWKS.
async function verifyAccessToken(token, audience) {
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
    issuer,
    audience,
    typ: 'at+jwt',
    algorithms: ['ES256'],
  });
  assertEqual(protectedHeader.typ, 'at+jwt', 'header typ');
  assert(typeof protectedHeader.kid === 'string', 'header has no kid');
  return payload;
}

// The RFC 9068 §2.2 claims of a client_credentials token issued to `clientId`.
function checkClaims(claims, { clientId, sub = clientId, scope, expiresIn }) {
  for (const name of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
    assert(claims[name] !== undefined, `claim ${name} missing`);
  }
  assertEqual(claims.client_id, clientId, 'client_id');
  assertEqual(claims.sub, sub, 'sub');
  assertEqual(claims.scope, scope, 'scope');
  assert(typeof claims.jti === 'string' && claims.jti.length >= 16, `weak jti ${claims.jti}`);
  const t = now();
  assert(Number.isInteger(claims.iat) && claims.iat <= t, `iat ${claims.iat} is after now ${t}`);
  assert(Number.isInteger(claims.exp) && t < claims.exp, `exp ${claims.exp} is not after now ${t}`);
  if (expiresIn !== undefined) assertEqual(claims.exp - claims.iat, expiresIn, 'exp - iat (expires_in)');
}

// The error a call must fail with: a ResponseBodyError carrying `error`, or (for
// invalid_client) the WWW-Authenticate challenge error openid-client raises first, whose
// response body carries `error`.
async function expectOAuthError(promise, { status, error, description }) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert(err, `succeeded, expected ${error}`);
  let code;
  let said;
  if (err instanceof client.ResponseBodyError) {
    code = err.error;
    said = err.error_description;
  } else if (err instanceof client.WWWAuthenticateChallengeError) {
    // RFC 6749 §5.2: a 401 invalid_client names the Basic scheme; openid-client raises the
    // challenge without reading the body, which still carries the error code.
    const schemes = err.cause.map((c) => c.scheme);
    assert(schemes.includes('basic'), `challenge schemes ${JSON.stringify(schemes)}`);
    const body = await err.response.json();
    code = body.error;
    said = body.error_description;
  } else {
    throw new Error(`unexpected ${err.name}: ${err.message}`);
  }
  assertEqual(err.status, status, `HTTP status of ${error}`);
  assertEqual(code, error, 'error');
  if (description !== undefined) assertEqual(said, description, 'error_description');
}

const basicAuth = (id, secret) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

const checks = [
  ['discovery (RFC 8414 and OpenID paths) names the endpoints', async () => {
    const { basic } = creds;
    s.basic = await configure(basic.client_id, basic.client_secret, client.ClientSecretBasic(basic.client_secret));
    const oidc = await configure(basic.client_id, basic.client_secret, client.ClientSecretBasic(basic.client_secret), 'oidc');
    const md = s.basic.serverMetadata();
    assertEqual(oidc.serverMetadata().issuer, md.issuer, 'issuer at the OpenID path');
    assertEqual(md.issuer, issuer, 'issuer');
    assertEqual(md.token_endpoint, `${issuer}/oauth2/token`, 'token_endpoint');
    assertEqual(md.introspection_endpoint, `${issuer}/oauth2/introspect`, 'introspection_endpoint');
    assertEqual(md.revocation_endpoint, `${issuer}/oauth2/revoke`, 'revocation_endpoint');
    assertEqual(md.jwks_uri, `${issuer}/oauth2/jwks`, 'jwks_uri');
    assertEqual(md.response_types_supported, [], 'response_types_supported');
    for (const g of ['client_credentials', TOKEN_EXCHANGE]) {
      assert(md.grant_types_supported?.includes(g), `grant_types_supported lacks ${g}`);
    }
    for (const m of ['client_secret_basic', 'client_secret_post', 'private_key_jwt']) {
      assert(md.token_endpoint_auth_methods_supported?.includes(m), `token_endpoint_auth_methods_supported lacks ${m}`);
    }
    assert(md.dpop_signing_alg_values_supported?.includes('ES256'), 'dpop_signing_alg_values_supported lacks ES256');
    assert(md.introspection_signing_alg_values_supported?.includes('ES256'), 'introspection_signing_alg_values_supported lacks ES256');
    jwks = jose.createRemoteJWKSet(new URL(md.jwks_uri));
  }],

  ['client_credentials, client_secret_basic: Bearer RFC 9068 token verified from the JWKS', async () => {
    const { result: res, wire } = await recorded(() =>
      client.clientCredentialsGrant(s.basic, { resource: API, scope: 'read write' }));
    assertEqual(wire.length, 1, 'token requests');
    assert(wire[0].headers.get('authorization')?.startsWith('Basic '), 'no Basic authorization header');
    assert(!wire[0].body.has('client_secret'), 'client_secret in the body');
    assertEqual(JSON.parse(wire[0].responseText).token_type, 'Bearer', 'token_type');
    assertEqual(wire[0].responseHeaders.get('cache-control'), 'no-store', 'Cache-Control (RFC 6749 §5.1)');
    assertEqual(res.scope, 'read write', 'response scope');
    assert(Number.isInteger(res.expires_in) && res.expires_in > 0, `expires_in ${res.expires_in}`);
    const claims = await verifyAccessToken(res.access_token, API);
    assertEqual(claims.aud, API, 'aud');
    checkClaims(claims, { clientId: creds.basic.client_id, scope: 'read write', expiresIn: res.expires_in });
    s.basicToken = res.access_token;
    s.basicClaims = claims;
  }],

  ['client_credentials, client_secret_post', async () => {
    const { post } = creds;
    s.post = await configure(post.client_id, post.client_secret, client.ClientSecretPost(post.client_secret));
    const { result: res, wire } = await recorded(() => client.clientCredentialsGrant(s.post, { resource: API }));
    assertEqual(wire[0].body.get('client_secret'), post.client_secret, 'client_secret in the body');
    assert(!wire[0].headers.has('authorization'), 'authorization header sent');
    assertEqual(res.token_type, 'bearer', 'token_type');
    const claims = await verifyAccessToken(res.access_token, API);
    checkClaims(claims, { clientId: post.client_id, scope: 'read', expiresIn: res.expires_in });
  }],

  ['openid-client defaults (client_secret_post) with a client created without --auth-method', async () => {
    // A user's first try: discovery with the secret alone, which openid-client posts in the
    // form, against a client created with tokengate's defaults.
    const { basic } = creds;
    const config = await client.discovery(new URL(issuer), basic.client_id, basic.client_secret, undefined, {
      execute: [client.allowInsecureRequests],
      [client.customFetch]: recordingFetch,
    });
    const { result: res, wire } = await recorded(() => client.clientCredentialsGrant(config, { resource: API }));
    assertEqual(wire[0].body.get('client_secret'), basic.client_secret, 'client_secret in the body');
    const claims = await verifyAccessToken(res.access_token, API);
    checkClaims(claims, { clientId: basic.client_id, scope: 'read write', expiresIn: res.expires_in });
  }],

  ['a client pinned to client_secret_post refuses Basic and says which method it is registered for', async () => {
    const { post } = creds;
    const viaBasic = await configure(post.client_id, post.client_secret, client.ClientSecretBasic(post.client_secret));
    await expectOAuthError(client.clientCredentialsGrant(viaBasic, { resource: API }), {
      status: 401, error: 'invalid_client', description: 'the client is registered for client_secret_post',
    });
  }],

  ['client_credentials, private_key_jwt (ES256 assertion); the assertion cannot be replayed', async () => {
    const { pkjwt, pkjwt_key: jwk } = creds;
    const key = await jose.importJWK(jwk, 'ES256');
    const config = await configure(pkjwt.client_id, {}, client.PrivateKeyJwt({ key, kid: jwk.kid }));
    const { result: res, wire } = await recorded(() => client.clientCredentialsGrant(config, { resource: API }));
    const form = wire[0].body;
    assertEqual(form.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', 'client_assertion_type');
    const assertion = form.get('client_assertion');
    assertEqual(jose.decodeProtectedHeader(assertion).alg, 'ES256', 'assertion alg');
    assertEqual(res.token_type, 'bearer', 'token_type');
    const claims = await verifyAccessToken(res.access_token, API);
    checkClaims(claims, { clientId: pkjwt.client_id, scope: 'read', expiresIn: res.expires_in });
    // RFC 7523 §3: the same assertion (same jti) a second time is refused.
    const replay = await fetch(wire[0].url, { method: 'POST', body: form });
    assertEqual(replay.status, 401, 'replayed assertion status');
    assertEqual((await replay.json()).error, 'invalid_client', 'replayed assertion error');
  }],

  ['DPoP: use_dpop_nonce retry, DPoP token bound to the key (cnf.jkt), introspected as DPoP', async () => {
    const keyPair = await client.randomDPoPKeyPair('ES256');
    const dpop = client.getDPoPHandle(s.basic, keyPair);
    const { result: res, wire } = await recorded(() =>
      client.clientCredentialsGrant(s.basic, { resource: API, scope: 'read' }, { DPoP: dpop }));
    // RFC 9449 §8: the first proof has no nonce and is refused with one; the retry carries it.
    assertEqual(wire.map((w) => w.status), [400, 200], 'token request statuses');
    assertEqual(JSON.parse(wire[0].responseText).error, 'use_dpop_nonce', 'first answer');
    const nonce = wire[0].responseHeaders.get('dpop-nonce');
    assert(nonce, 'use_dpop_nonce answer has no DPoP-Nonce header');
    assertEqual(jose.decodeJwt(wire[0].headers.get('dpop')).nonce, undefined, 'first proof nonce');
    assertEqual(jose.decodeJwt(wire[1].headers.get('dpop')).nonce, nonce, 'retried proof nonce');
    assertEqual(JSON.parse(wire[1].responseText).token_type, 'DPoP', 'token_type');
    const claims = await verifyAccessToken(res.access_token, API);
    checkClaims(claims, { clientId: creds.basic.client_id, scope: 'read', expiresIn: res.expires_in });
    const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
    assertEqual(claims.cnf, { jkt }, 'cnf');
    // The nonce the server handed back is accepted on the next request: no retry.
    const again = await recorded(() =>
      client.clientCredentialsGrant(s.basic, { resource: API, scope: 'read' }, { DPoP: dpop }));
    assertEqual(again.wire.map((w) => w.status), [200], 'second DPoP token request statuses');
    assertEqual((await verifyAccessToken(again.result.access_token, API)).cnf, { jkt }, 'second token cnf');
    // RFC 9449 §11.1: the same proof again is refused.
    const replay = await fetch(again.wire[0].url, {
      method: 'POST',
      headers: again.wire[0].headers,
      body: again.wire[0].body,
    });
    assertEqual(replay.status, 400, 'replayed proof status');
    assertEqual((await replay.json()).error, 'invalid_dpop_proof', 'replayed proof error');
    const info = await client.tokenIntrospection(s.basic, res.access_token);
    assertEqual(info.active, true, 'active');
    assertEqual(info.token_type, 'DPoP', 'introspected token_type');
    assertEqual(info.cnf, { jkt }, 'introspected cnf');
  }],

  ['introspection, JSON (RFC 7662)', async () => {
    const info = await client.tokenIntrospection(s.basic, s.basicToken);
    const c = s.basicClaims;
    assertEqual(info.active, true, 'active');
    for (const name of ['scope', 'client_id', 'sub', 'aud', 'iss', 'exp', 'iat', 'jti']) {
      assertEqual(info[name], c[name], name);
    }
    assertEqual(info.token_type, 'Bearer', 'token_type');
    assertEqual(info.cnf, undefined, 'cnf');
  }],

  ['introspection, JWT (RFC 9701) verified with jose from the JWKS', async () => {
    const { basic } = creds;
    const md = s.basic.serverMetadata();
    const response = await fetch(md.introspection_endpoint, {
      method: 'POST',
      headers: {
        authorization: basicAuth(basic.client_id, basic.client_secret),
        accept: 'application/token-introspection+jwt',
      },
      body: new URLSearchParams({ token: s.basicToken }),
    });
    assertEqual(response.status, 200, 'status');
    assertEqual(response.headers.get('content-type')?.split(';')[0], 'application/token-introspection+jwt', 'content-type');
    const { payload, protectedHeader } = await jose.jwtVerify(await response.text(), jwks, {
      issuer,
      audience: basic.client_id,
      typ: 'token-introspection+jwt',
      algorithms: ['ES256'],
    });
    assertEqual(protectedHeader.typ, 'token-introspection+jwt', 'typ');
    assert(Number.isInteger(payload.iat) && payload.iat <= now(), `iat ${payload.iat}`);
    const ti = payload.token_introspection;
    assertEqual(ti?.active, true, 'token_introspection.active');
    assertEqual(ti.jti, s.basicClaims.jti, 'token_introspection.jti');
    assertEqual(ti.scope, 'read write', 'token_introspection.scope');
    assertEqual(ti.client_id, basic.client_id, 'token_introspection.client_id');
  }],

  ['introspection, JWT through openid-client (introspection_signed_response_alg, signature checked)', async () => {
    const { basic } = creds;
    const config = await configure(
      basic.client_id,
      { client_secret: basic.client_secret, introspection_signed_response_alg: 'ES256' },
      client.ClientSecretBasic(basic.client_secret),
    );
    client.enableNonRepudiationChecks(config);
    const { result: info, wire } = await recorded(() => client.tokenIntrospection(config, s.basicToken));
    const intro = wire.find((w) => w.url.endsWith('/oauth2/introspect'));
    assertEqual(intro.responseHeaders.get('content-type')?.split(';')[0], 'application/token-introspection+jwt', 'content-type');
    // A fresh Configuration has no JWKS cached: the signature check had to fetch it.
    assert(wire.some((w) => w.url === s.basic.serverMetadata().jwks_uri), 'the JWKS was not fetched to check the signature');
    assertEqual(info.active, true, 'active');
    assertEqual(info.jti, s.basicClaims.jti, 'jti');
  }],

  ['encrypted audience: nested JWE (5 segments, cty JWT) that introspects active', async () => {
    const res = await client.clientCredentialsGrant(s.basic, { resource: SECRET_API });
    assertEqual(res.access_token.split('.').length, 5, 'segments');
    const header = jose.decodeProtectedHeader(res.access_token);
    assert(typeof header.alg === 'string' && typeof header.enc === 'string', `JWE header ${JSON.stringify(header)}`);
    assertEqual(header.cty, 'JWT', 'cty');
    assertEqual(res.scope, 'read', 'scope');
    const info = await client.tokenIntrospection(s.basic, res.access_token);
    assertEqual(info.active, true, 'active');
    assertEqual(info.aud, SECRET_API, 'aud');
    assertEqual(info.client_id, creds.basic.client_id, 'client_id');
    assertEqual(info.scope, 'read', 'scope');
    // Introspection is for the token's client and its audience's clients: the post client
    // (registered for https://api.example only) is told nothing.
    assertEqual(await client.tokenIntrospection(s.post, res.access_token), { active: false }, 'introspected by another audience\'s client');
  }],

  ['token exchange (RFC 8693) via genericGrantRequest: subject kept, scope narrowed', async () => {
    const { basic, post } = creds;
    const res = await client.genericGrantRequest(s.post, TOKEN_EXCHANGE, {
      subject_token: s.basicToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: API,
    });
    assertEqual(res.issued_token_type, ACCESS_TOKEN_TYPE, 'issued_token_type');
    assertEqual(res.token_type, 'bearer', 'token_type');
    const claims = await verifyAccessToken(res.access_token, API);
    // sub is the subject token's (the basic client), client_id the caller (post), and the
    // scope is within both the subject token's and the caller's.
    checkClaims(claims, { clientId: post.client_id, sub: basic.client_id, scope: 'read', expiresIn: res.expires_in });
    assert(claims.jti !== s.basicClaims.jti, 'same jti as the subject token');
  }],

  ['revocation (RFC 7009) via tokenRevocation, then introspection says inactive', async () => {
    const res = await client.clientCredentialsGrant(s.basic, { resource: API });
    assertEqual((await client.tokenIntrospection(s.basic, res.access_token)).active, true, 'active before revocation');
    await client.tokenRevocation(s.basic, res.access_token);
    const info = await client.tokenIntrospection(s.basic, res.access_token);
    assertEqual(info, { active: false }, 'introspection after revocation');
    // Revoking again is still a success (RFC 7009 §2.2).
    await client.tokenRevocation(s.basic, res.access_token);
    // A revoked token is no subject token for an exchange (RFC 8693 §2.2.2: invalid_grant).
    await expectOAuthError(client.genericGrantRequest(s.post, TOKEN_EXCHANGE, {
      subject_token: res.access_token,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: API,
    }), { status: 400, error: 'invalid_grant' });
    // The first token is untouched.
    assertEqual((await client.tokenIntrospection(s.basic, s.basicToken)).active, true, 'other token active');
  }],

  ['errors: wrong secret (basic and post) is invalid_client 401', async () => {
    const { basic, post } = creds;
    const wrongBasic = await configure(basic.client_id, 'not-the-secret', client.ClientSecretBasic('not-the-secret'));
    await expectOAuthError(client.clientCredentialsGrant(wrongBasic, { resource: API }), { status: 401, error: 'invalid_client' });
    const wrongPost = await configure(post.client_id, 'not-the-secret', client.ClientSecretPost('not-the-secret'));
    await expectOAuthError(client.clientCredentialsGrant(wrongPost, { resource: API }), { status: 401, error: 'invalid_client' });
  }],

  ['errors: scope=admin is invalid_scope', async () => {
    await expectOAuthError(client.clientCredentialsGrant(s.basic, { resource: API, scope: 'admin' }), { status: 400, error: 'invalid_scope' });
  }],

  ['errors: resource=https://unknown.example is invalid_target', async () => {
    await expectOAuthError(client.clientCredentialsGrant(s.basic, { resource: UNKNOWN_API }), { status: 400, error: 'invalid_target' });
  }],
];

await runChecks('oauth', checks);
