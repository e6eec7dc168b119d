// The MCP check (issue #18): the official MCP TypeScript SDK's client, with its OAuth client
// provider, calls a tool of an MCP server (interop/mcp_server.mjs) behind a tokengate MCP
// route. It finds tokengate from the route's 401 (RFC 9728 resource metadata, then RFC 8414),
// registers itself (RFC 7591), signs a user in (through node-oidc-provider; the user's browser
// is interop/browser.mjs), calls the tool, refreshes after its access token expires, and is
// refused once its refresh token is revoked. A second host names itself with a Client ID
// Metadata Document instead (the SDK's `clientMetadataUrl`), served over https here, and goes
// through the same steps.
//
//   node interop/mcp.mjs ISSUER MCP_URL TOKEN_LIFETIME DOC_CERT DOC_KEY
//
// ISSUER is tokengate's issuer, MCP_URL the route's URL (its `mcp.resource`), TOKEN_LIFETIME
// the seconds an access token for it lives; DOC_CERT and DOC_KEY the PEM certificate (for
// 127.0.0.1, issued by a CA tokengate trusts) and key the document is served with. Prints one
// line per check, then `N passed, M failed`. Exit status: 0 all passed, 1 a check failed or
// the number of checks is not the one interop/expected.json pins for "mcp", 2 bad arguments.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { assert, assertEqual, runChecks } from './checks.mjs';
import { signIn } from './browser.mjs';

const [issuer, mcpUrl, lifetimeArg, docCert, docKey, ...extra] = process.argv.slice(2);
const lifetime = Number(lifetimeArg);
if (!issuer || !mcpUrl || !Number.isInteger(lifetime) || !docCert || !docKey || extra.length) {
  console.error('usage: node interop/mcp.mjs ISSUER MCP_URL TOKEN_LIFETIME DOC_CERT DOC_KEY');
  process.exit(2);
}
const redirectUrl = 'http://127.0.0.1:49153/callback';

// What an MCP host keeps for one server: its registration, tokens and PKCE verifier; the
// authorization URL it would open in the user's browser. With `clientMetadataUrl`, the SDK
// names the host by that URL where the server supports metadata documents.
const newProvider = (clientMetadataUrl) => ({
  clientMetadataUrl,
  registered: undefined,
  saved: undefined,
  verifier: undefined,
  authorizationUrl: undefined,
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return {
      client_name: 'MCP interop client',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  clientInformation() { return this.registered; },
  saveClientInformation(info) { this.registered = info; },
  tokens() { return this.saved; },
  saveTokens(tokens) { this.saved = tokens; },
  redirectToAuthorization(url) { this.authorizationUrl = url; },
  saveCodeVerifier(v) { this.verifier = v; },
  codeVerifier() { return this.verifier; },
});
const provider = newProvider(undefined);

function transport(host = provider) {
  return new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: host });
}

async function connected(host = provider) {
  const client = new Client({ name: 'tokengate-interop', version: '1.0.0' });
  await client.connect(transport(host));
  return client;
}

// The second host's metadata document, served over https on a loopback port; its URL is its
// client_id. Counts the times tokengate fetched it.
const documentServer = { fetches: 0, url: undefined };
const server = createServer({ cert: readFileSync(docCert), key: readFileSync(docKey) }, (req, res) => {
  if (req.url !== '/mcp-host/client.json') {
    res.writeHead(404).end();
    return;
  }
  documentServer.fetches += 1;
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
  res.end(JSON.stringify({
    client_id: documentServer.url,
    client_name: 'MCP interop host (metadata document)',
    redirect_uris: [redirectUrl],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  }));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
documentServer.url = `https://127.0.0.1:${server.address().port}/mcp-host/client.json`;

async function whoami(client) {
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  return result.content?.[0]?.text;
}

// The whole flow for one host: `how` says how it names itself ('registers itself' with
// RFC 7591, or 'is known by its metadata document'); `identified` checks the client_id the
// SDK chose.
function flow(how, host, identified) {
  const s = {};
  const named = (text) => `${text} (the host that ${how})`;
  return [
    [named('the 401 leads the SDK to tokengate, which asks the user to sign in'), async () => {
      let error;
      try {
        await connected(host);
      } catch (e) {
        error = e;
      }
      assert(error instanceof UnauthorizedError, `expected UnauthorizedError, got ${error}`);
      identified(host.registered?.client_id);
      const url = host.authorizationUrl;
      assert(url, 'no authorization URL');
      assertEqual(`${url.origin}${url.pathname}`, `${issuer}/oauth2/authorize`, 'authorization endpoint');
      assertEqual(url.searchParams.get('client_id'), host.registered.client_id, 'client_id sent');
      assertEqual(url.searchParams.get('resource'), mcpUrl, 'RFC 8707 resource');
      assertEqual(url.searchParams.get('code_challenge_method'), 'S256', 'PKCE');
    }],
    [named('the user signs in; the SDK redeems the code'), async () => {
      const callback = await signIn(host.authorizationUrl.href, 'grace', redirectUrl);
      await transport(host).finishAuth(callback.searchParams.get('code'));
      assert(host.saved?.access_token && host.saved?.refresh_token, 'no tokens saved');
      s.first = host.saved;
    }],
    [named('the tool, called through the gateway, sees the signed-in user'), async () => {
      s.client = await connected(host);
      assertEqual(await whoami(s.client), 'hello grace', 'tool answer');
    }],
    [named('after the access token expires, the SDK refreshes and the call succeeds'), async () => {
      await new Promise((resolve) => setTimeout(resolve, (lifetime + 2) * 1000));
      assertEqual(await whoami(s.client), 'hello grace', 'tool answer after expiry');
      assert(host.saved.access_token !== s.first.access_token, 'the access token was not renewed');
      assert(host.saved.refresh_token !== s.first.refresh_token, 'the refresh token was not rotated');
    }],
    [named('once its refresh token is revoked, the client is refused'), async () => {
      const response = await fetch(`${issuer}/oauth2/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          token: host.saved.refresh_token,
          token_type_hint: 'refresh_token',
          client_id: host.registered.client_id,
        }),
      });
      assertEqual(response.status, 200, 'revocation');
      host.authorizationUrl = undefined;
      let error;
      try {
        await whoami(s.client);
      } catch (e) {
        error = e;
      }
      assert(error, 'the call succeeded after revocation');
      // The SDK's refresh is refused (invalid_grant), so it needs the user again.
      const refused = error instanceof UnauthorizedError || error?.constructor?.name === 'InvalidGrantError';
      assert(refused, `expected invalid_grant or a new sign-in, got ${error}`);
      // And the access token that was live is refused by the gateway (its grant was revoked).
      const direct = await fetch(mcpUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${host.saved.access_token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      assertEqual(direct.status, 401, 'the revoked grant\'s access token at the gateway');
      await s.client.close();
    }],
  ];
}

const documentHost = newProvider(documentServer.url);
await runChecks('mcp', [
  ...flow('registers itself', provider, (clientId) => {
    assert(clientId && !clientId.startsWith('https://'), `the SDK did not register (RFC 7591): ${clientId}`);
  }),
  ...flow('is known by its metadata document', documentHost, (clientId) => {
    assertEqual(clientId, documentServer.url, 'the client_id is the document URL, with no registration');
  }),
  ['tokengate fetched the metadata document, and kept it', async () => {
    // One node, one fetch at a time per document, kept for its max-age (300 s).
    assertEqual(documentServer.fetches, 1, 'fetches of the document');
  }],
]);
server.close();
