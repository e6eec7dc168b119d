// The check runner and assertions shared by oauth.mjs and gateway.mjs, so that both report
// alike: one line per check (`ok - N. name` / `FAIL - N. name: reason`), then
// `N passed, M failed`.

import { readFileSync } from 'node:fs';
import * as client from 'openid-client';

// The pinned totals (interop/README.md, "Pinned totals"): `{"oauth": {"checks": N, "why": ...},
// "gateway": {...}, "matrix": {...}}`.
const EXPECTED = new URL('./expected.json', import.meta.url);

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

export const now = () => Math.floor(Date.now() / 1000);

// The number of checks interop/expected.json pins for `suite`, or a string saying why there
// is none (no file, bad JSON, no entry, no positive count or no "why").
function pinnedCount(suite) {
  let pinned;
  try {
    pinned = JSON.parse(readFileSync(EXPECTED, 'utf8'))[suite];
  } catch (e) {
    return `cannot read interop/expected.json: ${e.message}`;
  }
  if (!Number.isInteger(pinned?.checks) || pinned.checks <= 0) {
    return `interop/expected.json pins no positive "checks" for "${suite}"`;
  }
  if (typeof pinned.why !== 'string' || !pinned.why.trim()) {
    return `interop/expected.json gives no "why" for "${suite}"`;
  }
  return pinned.checks;
}

// Runs `checks` ([name, async fn] pairs) of `suite` (its entry in interop/expected.json) in
// order, each even if an earlier one failed, reports them and exits: 0 all passed and as many
// ran as interop/expected.json pins, 1 otherwise (a check failed, none ran, or the number of
// checks is not the pinned one: then a `FAIL - pinned total: ...` line says so, and the
// summary line ends with the reason). `after` runs before the exit (closing a browser).
export async function runChecks(suite, checks, after = async () => {}) {
  const expected = pinnedCount(suite);
  let passed = 0;
  let failed = 0;
  for (const [i, [name, fn]] of checks.entries()) {
    try {
      await fn();
      passed += 1;
      console.log(`ok - ${i + 1}. ${name}`);
    } catch (e) {
      failed += 1;
      // openid-client's errors keep the server's answer out of the message.
      const detail = e instanceof client.ResponseBodyError
        ? ` (HTTP ${e.status}, error ${e.error}: ${e.error_description})`
        : '';
      console.log(`FAIL - ${i + 1}. ${name}: ${e.name}: ${e.message}${detail}`);
    }
  }
  let problem = null;
  let advice = '';
  if (checks.length === 0) {
    problem = 'no checks ran';
  } else if (typeof expected === 'string') {
    problem = expected;
  } else if (checks.length !== expected) {
    problem = `${checks.length} checks ran, interop/expected.json pins ${expected} for "${suite}"`;
    advice = ` If the change is intended, set "checks" of "${suite}" in interop/expected.json to `
      + `${checks.length} and say why in its "why".`;
  }
  if (problem) console.log(`FAIL - pinned total: ${problem}.${advice}`);
  try {
    await after();
  } catch (e) {
    console.error(`cleaning up after the checks: ${e.message}`);
  }
  console.log(`${passed} passed, ${failed} failed${problem ? `; ${problem}` : ''}`);
  process.exit(failed || problem ? 1 : 0);
}
