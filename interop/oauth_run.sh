#!/usr/bin/env bash
# The OAuth client check: a real `tokengate serve` on a free loopback port, driven over HTTP by
# Node `openid-client` (interop/oauth.mjs). Run through `interop/run` (which installs the Node
# peer and builds tokengate); or directly once they are:  bash interop/oauth_run.sh
# Everything lives in a temporary directory (configuration, SQLite data, keys, client
# credentials, server log) that is removed on exit; the server is stopped on exit.
# The tokengate binary is $TOKENGATE_BIN (default: target/debug/tokengate under the repo root).
# Exit status: that of oauth.mjs (0 all passed, 1 a check failed), 2 the harness failed.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${TOKENGATE_BIN:-target/debug/tokengate}
if [[ ! -x $bin ]]; then
  echo "oauth: no tokengate binary at $bin (build it, or set TOKENGATE_BIN)" >&2
  exit 2
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tmp=$(mktemp -d -t tokengate-oauth.XXXXXX)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs the harness's own commands; on failure shows their stderr and stops with status 2.
harness() {
  local err=$tmp/harness.err
  if ! "$@" 2>"$err"; then
    cat "$err" >&2
    echo "oauth: harness step failed: $*" >&2
    exit 2
  fi
}

TOKENGATE_MASTER_KEY=$(node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64"))')
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
"$bin" serve --config "$config" --listen 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
issuer=
for ((i = 0; i < 300; i++)); do
  if (($(wc -l <"$tmp/server.out") > 0)); then # a whole line
    line=$(head -n 1 "$tmp/server.out")
    if [[ $line == "tokengate listening on "* ]]; then
      issuer=${line#tokengate listening on }
      break
    fi
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [[ -z $issuer ]]; then
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "oauth: tokengate serve did not start listening within 30 s; its output:" >&2
  else
    echo "oauth: tokengate serve exited before listening; its output:" >&2
  fi
  cat "$tmp/server.out" "$tmp/server.log" >&2
  exit 2
fi

status=0
node interop/oauth.mjs "$issuer" "$tmp/clients.json" || status=$?
if ((status != 0)); then
  echo "oauth: server log (tail):" >&2
  tail -n 40 "$tmp/server.log" >&2
fi
exit "$status"
