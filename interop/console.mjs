// The console check: Debian's Chromium, driven by playwright-core, against a real
// `tokengate serve` whose route /api/ forwards to a Node upstream (interop/console_run.sh).
// A user signs in with the admin token, creates a client and uses its secret with curl,
// disables it and sees curl refused, rotates a key, reads the audit trail; the console's
// Content-Security-Policy blocks an injected inline script and the admin API refuses a
// change without the CSRF token; no page logs an error. Screenshots of every page go to
// SHOTS (docs/console/ when run with --screenshots).
//
// Usage: node interop/console.mjs BASE_URL ADMIN_TOKEN AUDIENCE SHOTS DATABASE

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { assert, assertEqual, runChecks } from './checks.mjs';

const [base, adminToken, audience, shots, database] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
// Every error a page logs, and every script error: the last check wants none.
const errors = [];
page.on('console', (m) => {
  if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`);
});
page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));

// The browser logs a failed request itself: takes back the one line a check caused on purpose.
function expectLogged(status) {
  const at = errors.findIndex((e) => e.includes(`status of ${status}`));
  assert(at >= 0, `the browser did not log the ${status}`);
  errors.splice(at, 1);
}

// Waits until the server has signed an audit checkpoint (the audit page shows the newest).
async function checkpointSigned() {
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`${base}/admin/audit/checkpoint`, { headers: { authorization: `Bearer ${adminToken}` } });
    if (r.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no audit checkpoint within 10 s');
}

const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

// `curl` as a user would type it: a client_credentials token with the client's secret.
function curlToken(clientId, secret) {
  const out = execFileSync('curl', [
    '-s', '-w', '\n%{http_code}', '-u', `${clientId}:${secret}`,
    '-d', 'grant_type=client_credentials', '-d', 'scope=read', '-d', `resource=${audience}`,
    `${base}/oauth2/token`,
  ]).toString();
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)), body: JSON.parse(out.slice(0, cut) || 'null') };
}

function sqlite(statements) {
  execFileSync('sqlite3', [database, statements]);
}

function curlApi(token) {
  return Number(execFileSync('curl', [
    '-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Authorization: Bearer ${token}`,
    `${base}/api/hello`,
  ]).toString());
}

let created = null;

await runChecks('console', [
  ['the console answers with its page under a strict Content-Security-Policy', async () => {
    const response = await page.goto(`${base}/console`);
    assertEqual(response.status(), 200, 'status');
    const csp = response.headers()['content-security-policy'] ?? '';
    assert(csp.includes("script-src 'self'") && !csp.includes('unsafe'), `CSP: ${csp}`);
    await page.getByLabel('Admin token').waitFor();
    await shot('sign-in');
  }],
  ['a wrong admin token is refused with a message', async () => {
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not the admin token' }).waitFor();
    expectLogged(401);
  }],
  ['signing in with the admin token opens the console, on an HttpOnly SameSite=Strict cookie', async () => {
    await page.getByLabel('Admin token').fill(adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    const [cookie] = await context.cookies();
    assertEqual(
      [cookie?.name, cookie?.httpOnly, cookie?.sameSite, cookie?.path],
      ['tokengate_console', true, 'Strict', '/console'],
      'cookie',
    );
    assertEqual(await page.evaluate(() => document.cookie), '', 'cookie readable by scripts');
  }],
  ['a client created in the console gets a token with curl, through the gateway', async () => {
    await page.getByRole('link', { name: 'Clients' }).click();
    await page.getByLabel('Name').fill('console-made');
    await page.getByLabel('Scopes (space-separated)').fill('read');
    await page.getByLabel('Audiences (space-separated)').fill(audience);
    await page.getByRole('button', { name: 'Create client' }).click();
    const id = await page.getByTestId('client-id').textContent();
    const secret = await page.getByTestId('client-secret').textContent();
    await shot('clients-secret-once');
    const token = curlToken(id, secret);
    assertEqual(token.status, 200, `token endpoint (${JSON.stringify(token.body)})`);
    assertEqual(curlApi(token.body.access_token), 200, 'the route with that token');
    created = { id, secret };
    await page.getByRole('button', { name: 'Done' }).click();
    await page.locator(`tr[data-client="${id}"]`).waitFor();
    await shot('clients');
  }],
  ['a client disabled in the console is refused tokens', async () => {
    assert(created, 'no client was created');
    const row = page.locator(`tr[data-client="${created.id}"]`);
    await row.getByRole('button', { name: /^Disable/ }).click();
    await row.getByRole('cell', { name: 'disabled' }).waitFor();
    assertEqual(curlToken(created.id, created.secret).status, 401, 'token endpoint');
    await row.getByRole('button', { name: /^Enable/ }).click();
    await row.getByRole('cell', { name: 'enabled' }).waitFor();
    assertEqual(curlToken(created.id, created.secret).status, 200, 'token endpoint once enabled');
  }],
  ['a token found in the console and revoked there is refused by the gateway', async () => {
    assert(created, 'no client was created');
    // Disabling the client revoked its tokens issued up to that second (`iat` counts whole
    // seconds, so a token of the same second is refused too): take one from a later second.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const token = curlToken(created.id, created.secret).body.access_token;
    const jti = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).jti;
    assertEqual(curlApi(token), 200, 'the route before the revocation');
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByLabel('Search by').selectOption('client_id');
    await page.getByLabel('Value').fill(created.id);
    await page.getByRole('button', { name: 'Search' }).click();
    const row = page.locator(`tr[data-jti="${jti}"]`);
    await row.getByRole('cell', { name: 'active' }).waitFor();
    await shot('tokens');
    await row.getByRole('button', { name: /^Revoke/ }).click();
    await row.getByRole('cell', { name: 'revoked' }).waitFor();
    let status = 0;
    for (let i = 0; i < 30 && status !== 401; i++) {
      status = curlApi(token);
      if (status !== 401) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assertEqual(status, 401, 'the route after the revocation');
  }],
  ['the keys page rotates the signing key and shows the published JWKS', async () => {
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('heading', { name: 'Keys', level: 1 }).waitFor();
    await page.locator('tbody tr').first().waitFor(); // the ring is loaded
    const before = await page.locator('tbody tr').count();
    await page.getByRole('button', { name: 'Rotate signing key' }).click();
    await page.getByRole('status').filter({ hasText: 'New sig key' }).waitFor();
    await page.waitForFunction((n) => document.querySelectorAll('tbody tr').length === n + 1, before);
    const jwks = JSON.parse(await page.getByLabel('Published JWKS').textContent());
    assert(Array.isArray(jwks.keys) && jwks.keys.length > 0, 'no keys published');
    await shot('keys');
  }],
  ['the audit page lists what the console did, and the newest checkpoint', async () => {
    await checkpointSigned();
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('heading', { name: 'Audit', level: 1 }).waitFor();
    await page.getByRole('cell', { name: 'client.created' }).first().waitFor();
    await page.getByRole('cell', { name: 'key.rotated' }).first().waitFor();
    await page.getByText('Tree size').waitFor();
    await shot('audit');
  }],
  ['Verify on the audit page passes, and names the event changed behind its back', async () => {
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('status').filter({ hasText: /^ok: \d+ events and \d+ checkpoints verified/ }).waitFor();
    await shot('audit-verified');
    // An event changed directly in the database, as someone with write access could.
    sqlite(`UPDATE audit_events SET outcome = 'failure' WHERE seq = 1`);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('alert').filter({ hasText: 'The log does not verify: seq 1: changed' }).waitFor();
    await shot('audit-tampered');
    sqlite(`UPDATE audit_events SET outcome = 'success' WHERE seq = 1`);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('status').filter({ hasText: /^ok: / }).waitFor();
  }],
  ['the routes page shows the route in effect, and Reload reloads it', async () => {
    await page.getByRole('link', { name: 'Routes' }).click();
    await page.getByRole('heading', { name: 'Routes', level: 1 }).waitFor();
    await page.locator('tr[data-route="api"]').getByRole('cell', { name: 'from self' }).waitFor();
    await page.getByRole('button', { name: 'Reload' }).click();
    await page.getByRole('status').filter({ hasText: 'Reloaded: 1 route now serve.' }).waitFor();
    await page.getByText('Routes last reloaded').waitFor();
    await shot('routes');
  }],
  ['the overview charts move after traffic through the gateway', async () => {
    assert(created, 'no client was created');
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    const token = curlToken(created.id, created.secret).body.access_token;
    // Traffic while the page reads the metrics (accepted requests and refused tokens), until
    // a reading shows it: two readings make a point, and the page reads every 3 s.
    let sending = true;
    const traffic = (async () => {
      while (sending) {
        for (let i = 0; i < 5; i++) curlApi(token);
        curlApi('not-a-token');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    const moved = (id) =>
      page.waitForFunction(
        (testId) => Number(document.querySelector(`[data-testid="${testId}"]`)?.dataset.latest) > 0,
        id,
        { timeout: 30000 },
      );
    try {
      await moved('chart-requests');
      await moved('chart-denials');
    } finally {
      sending = false;
      await traffic;
    }
    await page.getByRole('cell', { name: 'api' }).waitFor();
    // The refused tokens by reason: "not-a-token" is not a JWT.
    await page.getByRole('cell', { name: 'ERR_JWT_INVALID' }).waitFor();
    await shot('overview');
  }],
  ['the pages work at 375 px wide', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    await page.getByRole('link', { name: 'Clients' }).click();
    await page.getByRole('heading', { name: 'Clients', level: 1 }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    assert(overflow <= 0, `the page is ${overflow} px wider than the screen`);
    await shot('clients-375');
    await page.setViewportSize({ width: 1280, height: 800 });
  }],
  ['a change without the CSRF token is refused, with the session cookie', async () => {
    const answer = await page.evaluate(async () => {
      const r = await fetch('/console/admin/clients', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'forged' }),
      });
      return [r.status, (await r.json()).error];
    });
    assertEqual(answer, [403, 'csrf'], 'answer');
    expectLogged(403);
  }],
  ['the console session cookie never reaches an upstream on the same origin', async () => {
    assert(created, 'no client was created');
    const token = curlToken(created.id, created.secret).body.access_token;
    const seen = await page.evaluate(async (t) => {
      const r = await fetch('/api/hello', { headers: { authorization: `Bearer ${t}` } });
      return [r.status, (await r.json()).headers];
    }, token);
    assertEqual(seen[0], 200, 'status');
    assert(!String(seen[1].cookie ?? '').includes('tokengate_console'), `the upstream saw ${seen[1].cookie}`);
  }],
  ['no page logged an error', async () => {
    assertEqual(errors, [], 'errors');
  }],
  ['the policy blocks an injected inline script', async () => {
    const blocked = await page.evaluate(
      () =>
        new Promise((resolve) => {
          document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
          const s = document.createElement('script');
          s.textContent = 'window.injected = true';
          document.body.append(s);
          setTimeout(() => resolve(window.injected ? 'ran' : 'no report'), 2000);
        }),
    );
    assert(blocked.startsWith('script-src'), `inline script: ${blocked}`);
  }],
], () => browser.close());
