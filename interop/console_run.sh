#!/usr/bin/env bash
# The console check: a real `tokengate serve` (SQLite, an admin token, one audience, a route
# /api/ to a Node upstream) driven through its web console by Debian's Chromium and
# playwright-core (interop/console.mjs). Run through `interop/run` (which installs the Node
# peers and builds tokengate); or directly once they are:  bash interop/console_run.sh
#   --screenshots DIR   keep the screenshots of every page in DIR (docs/console/ for the docs)
# Needs chromium (Debian's package; $CHROMIUM to use another build) and sqlite3 (the check
# changes an audit event behind the server's back). Everything else lives in
# a temporary directory removed on exit. Exit status: that of console.mjs, 2 the harness failed.
set -euo pipefail
cd "$(dirname "$0")/.."

label=console
source interop/lib.sh

shots=$tmp/shots
if [[ ${1:-} == --screenshots ]]; then
  shots=$(mkdir -p "$2" && cd "$2" && pwd)
fi
if ! command -v "${CHROMIUM:-chromium}" >/dev/null; then
  echo "console: chromium is needed (Debian's package chromium; scripts/test installs it)" >&2
  exit 2
fi

start upstream upstream node interop/upstream.mjs
upstream=$url

TOKENGATE_MASTER_KEY=$(random_base64 32)
export TOKENGATE_MASTER_KEY
TOKENGATE_ADMIN_TOKEN=$(random_base64 32)
export TOKENGATE_ADMIN_TOKEN
audience=https://api.example

config=$tmp/tokengate.toml
cat >"$config" <<EOF
[server]
data_dir = "$tmp/data"

[audit]
checkpoint_every = "1s"

[[audiences]]
id = "$audience"
scopes = ["read"]

[[routes]]
name = "api"
path_prefix = "/api/"
upstreams = ["$upstream"]
strip_prefix = "/api"

[routes.auth]
issuers = ["self"]
audience = "$audience"
required_scopes = ["read"]
EOF

start tokengate tokengate "$bin" serve --config "$config" --listen 127.0.0.1:0
base=$url

status=0
run_checks node interop/console.mjs "$base" "$TOKENGATE_ADMIN_TOKEN" "$audience" "$shots" \
  "$tmp/data/tokengate.db" || status=$?
if ((status != 0)); then
  echo "console: tokengate log (tail):" >&2
  tail -n 40 "$tmp/tokengate.log" >&2
fi
exit "$status"
