#!/usr/bin/env bash
# The login and MCP checks: `tokengate serve` signs users in at node-oidc-provider (its login and
# consent forms). Node `openid-client` is an application (interop/login.mjs): the authorization
# code flow with PKCE, the code replayed, refresh with rotation and reuse detection. The MCP
# TypeScript SDK's client is another (interop/mcp.mjs): it finds tokengate from an MCP route's
# 401, registers itself (RFC 7591), signs a user in, calls a tool of an MCP server
# (interop/mcp_server.mjs) through the gateway, refreshes, and is refused once revoked; a second
# MCP host names itself with a Client ID Metadata Document served over https by mcp.mjs (a
# certificate for 127.0.0.1 from a throwaway CA, which tokengate trusts through SSL_CERT_FILE;
# `metadata_documents_from_loopback` lets it fetch from loopback).
# Run through `interop/run` (which installs the Node peers and builds tokengate); or directly
# once they are:  bash interop/login_run.sh
# tokengate's issuer must be known to the provider (its redirect URI) before tokengate starts,
# and the provider's to tokengate: the port of tokengate is chosen first (a free loopback port,
# asked of the system and released), then the provider starts, then tokengate on that port.
# Everything lives in a temporary directory removed on exit; the servers stop on exit.
# Exit status: the first failure of login.mjs and mcp.mjs (0 all passed, 1 a check failed), 2 the
# harness failed.
set -euo pipefail
cd "$(dirname "$0")/.."

label=login
source interop/lib.sh

TOKENGATE_MASTER_KEY=$(random_base64 32)
export TOKENGATE_MASTER_KEY
TOKENGATE_IDP_SECRET=$(random_base64 24)
export TOKENGATE_IDP_SECRET

port=$(node -e "const s=require('node:net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close();})")
issuer=http://127.0.0.1:$port

printf '{"client_id": "tokengate", "client_secret": "%s"}\n' "$TOKENGATE_IDP_SECRET" >"$tmp/idp-client.json"
start idp oidc-provider node interop/login_provider.mjs "$tmp/idp-client.json" "$issuer/oauth2/callback"
idp=$url
start mcp mcp-server node interop/mcp_server.mjs
mcp_upstream=$url
# Short, so that the MCP check sees its client refresh.
mcp_token_lifetime=3

# The document server's certificate: a CA made for this run, and a leaf for 127.0.0.1.
harness openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=tokengate-interop-ca -keyout "$tmp/ca.key" -out "$tmp/ca.pem"
harness openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=127.0.0.1 -keyout "$tmp/doc.key" -out "$tmp/doc.csr"
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tmp/doc.ext"
harness openssl x509 -req -in "$tmp/doc.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
  -CAcreateserial -days 1 -extfile "$tmp/doc.ext" -out "$tmp/doc.pem"

config=$tmp/tokengate.toml
cat >"$config" <<EOF
[server]
data_dir = "$tmp/data"

[token_service.login]
provider = "$idp"
client_id = "tokengate"
client_secret_env = "TOKENGATE_IDP_SECRET"
claims = { email = "email", groups = "groups" }
consent = "always"

[token_service.registration]
dynamic = "open"
audiences = ["$issuer/mcp"]
client_id_metadata_documents = true
metadata_documents_from_loopback = true

[token_service.rate_limits]
per_ip = { limit = 600, per = "1m" }

[[audiences]]
id = "https://api.example"
scopes = ["read", "write"]

[[audiences]]
id = "$issuer/mcp"
scopes = ["mcp:tools"]
token_lifetime = "${mcp_token_lifetime}s"

[[routes]]
name = "mcp"
path = "/mcp"
upstreams = ["$mcp_upstream"]
[routes.auth]
issuers = ["self"]
forward_claims = { sub = "x-user-id" }
leeway = "0s"
[routes.mcp]
resource = "$issuer/mcp"
EOF

redirect=http://127.0.0.1/callback
harness "$bin" client create --config "$config" --name app --public --redirect-uri "$redirect" \
  --scope "read write" --audience https://api.example >"$tmp/app.json"
client_id=$(node -e "process.stdout.write(JSON.parse(require('node:fs').readFileSync('$tmp/app.json','utf8')).client_id)")

start server tokengate env SSL_CERT_FILE="$tmp/ca.pem" "$bin" serve --config "$config" --listen "127.0.0.1:$port"

status=0
run_checks node interop/login.mjs "$issuer" "$client_id" "$redirect" || status=$?
mcp_status=0
run_checks node interop/mcp.mjs "$issuer" "$issuer/mcp" "$mcp_token_lifetime" "$tmp/doc.pem" "$tmp/doc.key" || mcp_status=$?
((status != 0)) || status=$mcp_status
if ((status != 0)); then
  echo "login: tokengate log (tail):" >&2
  tail -n 40 "$tmp/server.log" >&2
  echo "login: oidc-provider log (tail):" >&2
  tail -n 40 "$tmp/idp.log" >&2
  echo "login: MCP server log (tail):" >&2
  tail -n 20 "$tmp/mcp.log" >&2
fi
exit "$status"
