// The gateway check's third-party authorization server: node-oidc-provider (panva) issuing
// RFC 9068 JWT access tokens, ES256-signed, for one resource server.
//
//   node interop/oidc_provider.mjs CLIENT_JSON
//
// CLIENT_JSON is {"client_id", "client_secret"}: the one client, which may use only the
// client_credentials grant, authenticating with client_secret_basic. Resource indicators
// (RFC 8707) are on: `resource=https://api.example` gets a JWT access token (typ at+jwt) with
// that audience and the scopes asked for among "read write"; any other resource is
// invalid_target. The signing key is a fresh P-256 key made at start (kid `oidc-es256`),
// published at the jwks_uri of the provider's discovery documents (RFC 8414 and OpenID).
// Listens on a free loopback port, the issuer being http://127.0.0.1:PORT, and prints
// `oidc-provider listening on http://127.0.0.1:PORT` on stdout once it accepts connections.
// Runs until killed. Exit status 2 on bad arguments.

import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const API = 'https://api.example';
const KID = 'oidc-es256';

const [clientFile, ...extra] = process.argv.slice(2);
if (!clientFile || extra.length) {
  console.error('usage: node interop/oidc_provider.mjs CLIENT_JSON');
  process.exit(2);
}
const { client_id: clientId, client_secret: clientSecret } = JSON.parse(readFileSync(clientFile, 'utf8'));

// The port comes first: the issuer (and so the provider) depends on it.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: KID, alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  }],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      async getResourceServerInfo(ctx, resource) {
        if (resource !== API) throw new errors.InvalidTarget();
        return {
          scope: 'read write',
          audience: API,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
// A token request that fails is logged on stderr (the driver shows it when a check fails).
provider.on('grant.error', (ctx, err) => {
  console.error(`oidc-provider: grant error: ${err.name}: ${err.message} (${err.error_description ?? ''})`);
});
provider.on('server_error', (ctx, err) => {
  console.error(`oidc-provider: server error: ${err.stack}`);
});

server.on('request', provider.callback());
console.log(`oidc-provider listening on ${issuer}`);
