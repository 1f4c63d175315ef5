#!/usr/bin/env bash
# Runs the README's "run it" command as written, then checks what the README promises: /health
# answers, and the example client gets `whoami` from the dev server. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

run_cmd=$(grep -m1 -E '^cargo run -- serve --dev +# run the server' README.md | sed 's/ *#.*//')
[ -n "$run_cmd" ] || { echo "README.md: run command not found"; exit 1; }
echo "README run command: $run_cmd"

log=$(mktemp)
# Build first so the server's start-up time is not the compile time. Separately: an example
# builds with the dev-dependencies' features, which `cargo run` of the binary alone does not use.
cargo build --quiet --bin mcp-server-entra
cargo build --quiet --example connect_with_client
env -u MCP_DEV_TOKEN $run_cmd 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 600); do
  curl -fsS http://localhost:8000/health >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "server exited:"; cat "$log"; exit 1; }
  sleep 0.1
done
health=$(curl -fsS http://localhost:8000/health)
[ "$health" = "ok" ] || { echo "/health said: $health"; exit 1; }

token=$(sed -n 's/.*dev token (send as `Authorization: Bearer <token>`): \([0-9a-f]*\).*/\1/p' "$log" | head -1)
[ -n "$token" ] || { echo "no dev token printed:"; cat "$log"; exit 1; }

out=$(MCP_ACCESS_TOKEN=$token timeout 60 cargo run --quiet --example connect_with_client)
echo "$out"
grep -q '^whoami: You are Dev User (dev@localhost)\.$' <<<"$out" || { echo "whoami answer missing"; exit 1; }
echo "README commands: ok"
