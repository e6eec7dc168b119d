// The login check (issue #18): Node `openid-client` as an application signing a user in at a
// running `tokengate serve`, which signs the user in at node-oidc-provider
// (interop/login_provider.mjs). The user's browser is interop/browser.mjs.
//
//   node interop/login.mjs ISSUER CLIENT_ID REDIRECT_URI
//
// ISSUER is tokengate's issuer; CLIENT_ID a public client registered there with the loopback
// REDIRECT_URI (any port). Prints one line per check, then `N passed, M failed`. Exit status:
// 0 all passed, 1 a check failed or the number of checks is not the one interop/expected.json
// pins for "login", 2 bad arguments.

import * as client from 'openid-client';
import * as jose from 'jose';
import { assert, assertEqual, runChecks } from './checks.mjs';
import { signIn } from './browser.mjs';

const API = 'https://api.example';

const [issuer, clientId, redirectUri, ...extra] = process.argv.slice(2);
if (!issuer || !clientId || !redirectUri || extra.length) {
  console.error('usage: node interop/login.mjs ISSUER CLIENT_ID REDIRECT_URI');
  process.exit(2);
}
// The port the application listens on for its redirect (RFC 8252 §7.3: any loopback port).
const presented = redirectUri.replace('127.0.0.1/', '127.0.0.1:49152/');

let config;
let jwks;
const s = {};

async function authorizationUrl() {
  s.verifier = client.randomPKCECodeVerifier();
  s.state = client.randomState();
  return client.buildAuthorizationUrl(config, {
    redirect_uri: presented,
    scope: 'read write',
    resource: API,
    code_challenge: await client.calculatePKCECodeChallenge(s.verifier),
    code_challenge_method: 'S256',
    state: s.state,
  });
}

await runChecks('login', [
  ['discovery: the authorization endpoint, code with S256, iss, public clients', async () => {
    config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), {
      algorithm: 'oauth2',
      execute: [client.allowInsecureRequests],
    });
    const m = config.serverMetadata();
    assertEqual(m.authorization_endpoint, `${issuer}/oauth2/authorize`, 'authorization_endpoint');
    assertEqual(m.code_challenge_methods_supported, ['S256'], 'code_challenge_methods_supported');
    assertEqual(m.authorization_response_iss_parameter_supported, true, 'iss parameter');
    assert(m.grant_types_supported.includes('refresh_token'), 'refresh_token grant');
    assert(m.token_endpoint_auth_methods_supported.includes('none'), 'public clients');
    jwks = jose.createRemoteJWKSet(new URL(m.jwks_uri));
  }],
  ['sign-in at oidc-provider, consent at tokengate, back with code, state and iss', async () => {
    s.callback = await signIn(await authorizationUrl(), 'ada', presented);
    assertEqual(s.callback.searchParams.get('state'), s.state, 'state');
    assertEqual(s.callback.searchParams.get('iss'), issuer, 'iss');
    assert(s.callback.searchParams.get('code'), 'no code');
  }],
  ['the code grant (openid-client checks state and iss): an access token for the user', async () => {
    s.tokens = await client.authorizationCodeGrant(config, s.callback, {
      pkceCodeVerifier: s.verifier,
      expectedState: s.state,
    });
    const { payload } = await jose.jwtVerify(s.tokens.access_token, jwks, {
      issuer, audience: API, typ: 'at+jwt', algorithms: ['ES256'],
    });
    assertEqual(payload.sub, 'ada', 'sub: the provider\'s');
    assertEqual(payload.client_id, clientId, 'client_id');
    assertEqual(payload.scope, 'read write', 'scope');
    assertEqual(payload.email, 'ada@example.com', 'email, copied from the provider (userinfo)');
    assertEqual(payload.groups, ['staff'], 'groups, copied from the provider');
    assert(Number.isInteger(payload.auth_time), 'auth_time');
    assert(s.tokens.refresh_token, 'no refresh token');
  }],
  ['the code again: invalid_grant', async () => {
    let error;
    try {
      await client.authorizationCodeGrant(config, s.callback, {
        pkceCodeVerifier: s.verifier,
        expectedState: s.state,
      });
    } catch (e) {
      error = e;
    }
    assertEqual(error?.error, 'invalid_grant', 'error');
    // Start again for the refresh checks.
    s.callback = await signIn(await authorizationUrl(), 'ada', presented);
    s.tokens = await client.authorizationCodeGrant(config, s.callback, {
      pkceCodeVerifier: s.verifier,
      expectedState: s.state,
    });
  }],
  ['refresh: a new access token and a rotated refresh token', async () => {
    s.old = s.tokens.refresh_token;
    s.refreshed = await client.refreshTokenGrant(config, s.old);
    assert(s.refreshed.refresh_token && s.refreshed.refresh_token !== s.old, 'not rotated');
    const { payload } = await jose.jwtVerify(s.refreshed.access_token, jwks, {
      issuer, audience: API, typ: 'at+jwt', algorithms: ['ES256'],
    });
    assertEqual(payload.sub, 'ada', 'sub');
  }],
  ['the rotated-out refresh token again: invalid_grant', async () => {
    let error;
    try {
      await client.refreshTokenGrant(config, s.old);
    } catch (e) {
      error = e;
    }
    assertEqual(error?.error, 'invalid_grant', 'error');
  }],
  ['after that reuse, the newest refresh token is revoked too', async () => {
    let error;
    try {
      await client.refreshTokenGrant(config, s.refreshed.refresh_token);
    } catch (e) {
      error = e;
    }
    assertEqual(error?.error, 'invalid_grant', 'error');
  }],
]);
