// The login check's OpenID Provider: node-oidc-provider (panva) where tokengate signs users
// in (issue #18), with its development interactions (a login form that takes any user name
// and password, then a consent form), driven over HTTP by interop/login.mjs.
//
//   node interop/login_provider.mjs CLIENT_JSON REDIRECT_URI
//
// CLIENT_JSON is {"client_id", "client_secret"}: tokengate's registration here, a confidential
// client (client_secret_basic) using the code flow with PKCE, whose one redirect URI is
// REDIRECT_URI (tokengate's {issuer}/oauth2/callback). Every account exists: its id is the
// login typed, with `email` = LOGIN@example.com and `groups` = ["staff"] (in the `profile`
// scope, so they are served by userinfo, as oidc-provider keeps ID tokens to the standard
// claims by default). ID tokens are ES256-signed with a fresh P-256 key (kid `login-es256`).
// Listens on a free loopback port, the issuer being http://127.0.0.1:PORT, and prints
// `oidc-provider listening on http://127.0.0.1:PORT` on stdout once it accepts connections.
// Runs until killed. Exit status 2 on bad arguments.

import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [clientFile, redirectUri, ...extra] = process.argv.slice(2);
if (!clientFile || !redirectUri || extra.length) {
  console.error('usage: node interop/login_provider.mjs CLIENT_JSON REDIRECT_URI');
  process.exit(2);
}
const { client_id: clientId, client_secret: clientSecret } = JSON.parse(readFileSync(clientFile, 'utf8'));

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'login-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['groups', 'name'],
  },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true, groups: ['staff'], name: id };
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
  },
});
provider.on('grant.error', (ctx, err) => {
  console.error(`oidc-provider: grant error: ${err.name}: ${err.message} (${err.error_description ?? ''})`);
});
provider.on('authorization.error', (ctx, err) => {
  console.error(`oidc-provider: authorization error: ${err.name}: ${err.message} (${err.error_description ?? ''})`);
});
provider.on('server_error', (ctx, err) => {
  console.error(`oidc-provider: server error: ${err.stack}`);
});

server.on('request', provider.callback());
console.log(`oidc-provider listening on ${issuer}`);
