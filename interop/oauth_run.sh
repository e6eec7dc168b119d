#!/usr/bin/env bash
# The OAuth client check: a real `tokengate serve` on a free loopback port, driven over HTTP by
# Node `openid-client` (interop/oauth.mjs). Run through `interop/run` (which installs the Node
# peer and builds tokengate); or directly once they are:  bash interop/oauth_run.sh
# Everything lives in a temporary directory (configuration, SQLite data, keys, client
# credentials, server log) that is removed on exit; the server is stopped on exit.
# The tokengate binary is $TOKENGATE_BIN (default: target/debug/tokengate under the repo root).
# Exit status: that of oauth.mjs (0 all passed, 1 a check failed or the pinned number of checks
# did not run; also 1 if it exits 0 without its summary line), 2 the harness failed.
set -euo pipefail
cd "$(dirname "$0")/.."

label=oauth
source interop/lib.sh

TOKENGATE_MASTER_KEY=$(random_base64 32)
export TOKENGATE_MASTER_KEY

config=$tmp/tokengate.toml
cat >"$config" <<EOF
[server]
data_dir = "$tmp/data"

[token_service]
dpop_nonce = true

[[audiences]]
id = "https://api.example"
scopes = ["read", "write"]

[[audiences]]
id = "https://secret.example"
scopes = ["read"]
encrypt = true
EOF

# Clients (created before the server starts, against the same database).
harness "$bin" client create --config "$config" --name basic --scope "read write" \
  --audience https://api.example --audience https://secret.example >"$tmp/basic.json"
harness "$bin" client create --config "$config" --name post --scope read \
  --audience https://api.example --auth-method client_secret_post >"$tmp/post.json"
harness "$bin" jwk generate --alg ES256 >"$tmp/pkjwt-private.json"
harness "$bin" jwk public "$tmp/pkjwt-private.json" >"$tmp/pkjwt-public.json"
printf '{"keys": [%s]}\n' "$(cat "$tmp/pkjwt-public.json")" >"$tmp/pkjwt-jwks.json"
harness "$bin" client create --config "$config" --name pkjwt --scope read \
  --audience https://api.example --auth-method private_key_jwt \
  --jwks "$tmp/pkjwt-jwks.json" >"$tmp/pkjwt.json"
printf '{"basic": %s, "post": %s, "pkjwt": %s, "pkjwt_key": %s}\n' \
  "$(cat "$tmp/basic.json")" "$(cat "$tmp/post.json")" "$(cat "$tmp/pkjwt.json")" \
  "$(cat "$tmp/pkjwt-private.json")" >"$tmp/clients.json"

# The server, on a free port; it prints its address once it accepts connections.
start server tokengate "$bin" serve --config "$config" --listen 127.0.0.1:0
issuer=$url

status=0
run_checks node interop/oauth.mjs "$issuer" "$tmp/clients.json" || status=$?
if ((status != 0)); then
  echo "oauth: server log (tail):" >&2
  tail -n 40 "$tmp/server.log" >&2
fi
exit "$status"
