// A browser for the login and MCP checks: it follows redirects by hand, keeps each host's
// cookies, and submits forms as a user would: node-oidc-provider's login form (any user name
// and password) and consent form, and tokengate's consent form (the button named `approve`).

import { assert, assertEqual } from './checks.mjs';

// A browser: cookies per host (a cookie deleted by the server is dropped), redirects followed
// by hand so each hop can be looked at.
const jar = new Map();
function remember(url, response) {
  const host = new URL(url).host;
  const cookies = jar.get(host) ?? new Map();
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const gone = !value || attributes.some((a) => /^\s*max-age=0\s*$/i.test(a))
      || attributes.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a));
    if (gone) cookies.delete(name);
    else cookies.set(name, value);
  }
  jar.set(host, cookies);
}
async function browse(url, form) {
  const host = new URL(url).host;
  const cookie = [...(jar.get(host) ?? new Map())].map(([n, v]) => `${n}=${v}`).join('; ');
  const response = await fetch(url, {
    method: form ? 'POST' : 'GET',
    redirect: 'manual',
    headers: {
      ...(cookie ? { cookie } : {}),
      ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    body: form ? new URLSearchParams(form).toString() : undefined,
  });
  remember(url, response);
  const location = response.headers.get('location');
  return {
    status: response.status,
    location: location ? new URL(location, url).href : null,
    text: await response.text(),
    url,
  };
}

// The first form of a page: its absolute action and its inputs' values.
function formOf(page) {
  const form = page.text.match(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i);
  assert(form, `no form on ${page.url}: ${page.text.slice(0, 300)}`);
  const fields = {};
  for (const input of form[2].matchAll(/<input[^>]*>/gi)) {
    const name = input[0].match(/name="([^"]*)"/i);
    const value = input[0].match(/value="([^"]*)"/i);
    if (name) fields[name[1]] = value ? value[1].replaceAll('&amp;', '&') : '';
  }
  return { action: new URL(form[1].replaceAll('&amp;', '&'), page.url).href, fields };
}

// Walks from the authorization URL to the application's redirect URI (`presented`, the URL
// prefix it listens on), signing in as `login` at the provider and approving at both consent
// pages. Returns the final URL.
export async function signIn(authorizationUrl, login, presented) {
  let page = await browse(authorizationUrl);
  for (let hops = 0; hops < 20; hops += 1) {
    if (page.location?.startsWith(presented)) return new URL(page.location);
    if (page.location) {
      page = await browse(page.location);
      continue;
    }
    assertEqual(page.status, 200, `${page.url}: status`);
    const { action, fields } = formOf(page);
    if ('login' in fields) {
      page = await browse(action, { ...fields, login, password: 'any' });
    } else if ('csrf' in fields) {
      page = await browse(action, { csrf: fields.csrf, approve: 'yes' });
    } else {
      page = await browse(action, fields);
    }
  }
  throw new Error('the sign-in did not come back to the application in 20 steps');
}

