#!/usr/bin/env bash
# Runs README.md's commands as written, wherever they can run here, and checks what the README
# promises:
#   1. quick start: the dev server, /health, the example client's `whoami`;
#   2. the raw `curl` tools/call for 2026-07-28 (exact answer);
#   3. the local issuer: the real Entra verifier against `examples/local_entra.rs`, a minted token
#      answered with the minted identity, an expired one refused with 401 "expired".
# The test command (`cargo test --workspace`) is CI's own step. Loopback only (ports 8000, 8001,
# 8400, as the README writes them), bounded in time, idempotent on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

# The code lines of the fenced block after `<!-- readme.sh: NAME -->`, trailing `  # comments` cut.
block() {
  awk -v name="$1" '
    $0 == "<!-- readme.sh: " name " -->" { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }
  ' README.md | sed -E 's/ {2,}# .*$//'
  grep -qx "<!-- readme.sh: $1 -->" README.md || { echo "README.md: block $1 not found" >&2; exit 1; }
}

pids=()
logs=$(mktemp -d)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$logs"
}
trap cleanup EXIT

# Starts `$1` (a simple command, as the README writes it) in the background, logging to $logs/$2.
start() {
  bash -c "exec env $1" >"$logs/$2.out" 2>"$logs/$2.err" &
  pids+=($!)
}

wait_for() { # url name
  for _ in $(seq 1 600); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$2 exited:"; cat "$logs/$2.err"; exit 1; }
    sleep 0.1
  done
  echo "$2 did not answer $1 within 60 s"; cat "$logs/$2.err"; exit 1
}

# Build first so start-up time is not compile time. Separately: an example builds with the
# dev-dependencies' features, which `cargo run` of the binary alone does not use.
cargo build --quiet --bin mcp-server-entra
cargo build --quiet --example connect_with_client --example local_entra

echo "== quick start"
run_cmd=$(grep -m1 -E '^cargo run -- serve --dev +# run the server' README.md | sed 's/ *#.*//')
[ -n "$run_cmd" ] || { echo "README.md: run command not found"; exit 1; }
echo "README run command: $run_cmd"
start "env -u MCP_DEV_TOKEN $run_cmd" dev
wait_for http://localhost:8000/health dev
health=$(curl -fsS http://localhost:8000/health)
[ "$health" = "ok" ] || { echo "/health said: $health"; exit 1; }
meta=$(curl -fsS localhost:8000/.well-known/oauth-protected-resource/mcp)
grep -qF '"authorization_servers":[]' <<<"$meta" || { echo "dev metadata is not as the README explains: $meta"; exit 1; }
token=$(sed -n 's/.*dev token (send as `Authorization: Bearer <token>`): \([0-9a-f]*\).*/\1/p' "$logs/dev.err" | head -1)
[ -n "$token" ] || { echo "no dev token printed:"; cat "$logs/dev.err"; exit 1; }
client=$(block client | sed "s/<printed token>/$token/")
echo "README client:"; echo "$client"
out=$(timeout 60 bash -c "set -e; $client")
echo "$out"
grep -q '^whoami: You are Dev User (dev@localhost)\.$' <<<"$out" || { echo "whoami answer missing"; exit 1; }

echo "== raw curl tools/call (2026-07-28)"
curl_cmd=$(block curl)
answer=$(TOKEN=$token timeout 20 bash -c "$curl_cmd")
expected='{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[{"type":"text","text":"You are Dev User (dev@localhost)."}],"structuredContent":{"app_id":"mcp-server-entra-dev","name":"Dev User","object_id":"00000000-0000-0000-0000-00000000de01","roles":[],"scopes":["access_as_user"],"tenant_id":"00000000-0000-0000-0000-00000000de00","username":"dev@localhost"},"isError":false}}'
[ "$answer" = "$expected" ] || { printf 'curl answered:\n%s\nexpected:\n%s\n' "$answer" "$expected"; exit 1; }
echo "$answer"

echo "== local issuer: the real Entra verifier, minted tokens"
issuer_cmd=$(block local-issuer)
echo "README issuer command: $issuer_cmd"
start "$issuer_cmd" issuer
wait_for http://127.0.0.1:8400/common/discovery/v2.0/keys issuer
server_cmd=$(block local-server)
echo "README server command: $server_cmd"
# The README's env lines are what `serve` printed: check they agree.
while IFS= read -r line; do
  grep -qF "$line" <<<"$server_cmd" || { echo "README server command lacks the printed line $line"; exit 1; }
done <"$logs/issuer.out"
start "$server_cmd" entra
wait_for http://localhost:8001/ready entra

mint_cmd=$(block local-mint)
echo "README mint/client commands:"; echo "$mint_cmd"
out=$(timeout 120 bash -c "set -e; $mint_cmd")
echo "$out"
grep -q '^whoami: You are Ada Lovelace (ada@contoso\.example)\.$' <<<"$out" || { echo "minted identity not answered"; exit 1; }

expired_cmd=$(block local-expired)
echo "README expiry command:"; echo "$expired_cmd"
out=$(timeout 60 bash -c "set -e; $expired_cmd")
echo "$out"
grep -q '^HTTP/1.1 401' <<<"$out" || { echo "expired token: no 401"; exit 1; }
grep -qi '^www-authenticate:.*error="invalid_token".*the token expired at' <<<"$out" || { echo "expired token: no 'expired' description"; exit 1; }

echo "README commands: ok"
