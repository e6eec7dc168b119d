#!/usr/bin/env bash
# The gateway check: a real `tokengate serve` whose route /api/ forwards to a Node HTTP upstream
# (interop/upstream.mjs, which echoes what it receives), accepting access tokens from two
# third-party issuers: node-oidc-provider (interop/oidc_provider.mjs; tokengate finds its keys
# by discovery) and a partner whose tokens Node `jose` signs (its JWKS given as a file). The
# checks are interop/gateway.mjs. Run through `interop/run` (which installs the Node peer and
# builds tokengate); or directly once they are:  bash interop/gateway_run.sh
# Everything lives in a temporary directory (configuration, SQLite data, keys, client
# credentials, server output) that is removed on exit; the three servers are stopped on exit.
# The tokengate binary is $TOKENGATE_BIN (default: target/debug/tokengate under the repo root).
# Exit status: that of gateway.mjs (0 all passed, 1 a check failed or the pinned number of
# checks did not run; also 1 if it exits 0 without its summary line), 2 the harness failed.
set -euo pipefail
cd "$(dirname "$0")/.."

label=gateway
source interop/lib.sh

# The upstream and the OpenID provider first: tokengate's configuration names their ports.
start upstream upstream node interop/upstream.mjs
upstream=$url

printf '{"client_id": "gateway-interop", "client_secret": "%s"}\n' "$(random_base64 32)" \
  >"$tmp/oidc-client.json"
start oidc oidc-provider node interop/oidc_provider.mjs "$tmp/oidc-client.json"
oidc_issuer=$url

harness node interop/gateway.mjs partner-key "$tmp"

TOKENGATE_MASTER_KEY=$(random_base64 32)
export TOKENGATE_MASTER_KEY

config=$tmp/tokengate.toml
cat >"$config" <<EOF
[server]
data_dir = "$tmp/data"

[[issuers]]
name = "oidc"
issuer = "$oidc_issuer"
discovery = true
algorithms = ["ES256"]

[[issuers]]
name = "partner"
issuer = "https://partner.example"
jwks_file = "$tmp/partner-jwks.json"
algorithms = ["ES256"]

[[routes]]
name = "api"
path_prefix = "/api/"
upstreams = ["$upstream"]
strip_prefix = "/api"

[routes.auth]
issuers = ["oidc", "partner"]
audience = "https://api.example"
required_scopes = ["read"]
forward_claims = { sub = "x-user-id", scope = "x-scopes" }
EOF
harness "$bin" config check "$config" >/dev/null

start tokengate tokengate "$bin" serve --config "$config" --listen 127.0.0.1:0
gateway=$url

status=0
run_checks node interop/gateway.mjs check "$gateway" "$oidc_issuer" "$upstream" "$tmp" || status=$?
if ((status != 0)); then
  echo "gateway: tokengate log (tail):" >&2
  tail -n 40 "$tmp/tokengate.log" >&2
  echo "gateway: oidc-provider log (tail):" >&2
  tail -n 20 "$tmp/oidc.log" >&2
fi
exit "$status"
