// The check runner and assertions shared by oauth.mjs and gateway.mjs, so that both report
// alike: one line per check (`ok - N. name` / `FAIL - N. name: reason`), then
// `N passed, M failed`.

import * as client from 'openid-client';

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

export const now = () => Math.floor(Date.now() / 1000);

// Runs `checks` ([name, async fn] pairs) in order, each even if an earlier one failed, reports
// them and exits: 0 all passed, 1 a check failed.
export async function runChecks(checks) {
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
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
