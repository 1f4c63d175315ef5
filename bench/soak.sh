#!/usr/bin/env bash
# Soak: SOAK_SECONDS (default 60) of full load on the release server (Entra verifier, fake Entra),
# valid tools/call on 8 connections plus hostile requests on 4 (bad tokens, ambiguous requests,
# encoded query tokens, sessions past MAX_SESSIONS, log-forging claims), sampling RSS every 5 s.
# Passes when no valid request fails, every hostile one gets its expected refusal, and RSS at the
# end is within 20% (or 4 MB) of RSS after warm-up. Loopback only, bounded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/bench"
mkdir -p "$work"
seconds=${SOAK_SECONDS:-60}
CLIENT_ID=11111111-2222-3333-4444-555555555555
TENANT=aaaaaaaa-bbbb-cccc-dddd-000000000001
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

(cd "$root" && cargo build --release --quiet --bin mcp-server-entra --example loadgen)
[ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/bench/requirements.txt"
PY="$work/venv/bin/python"
"$PY" "$root/tests/interop/fake_entra.py" serve >"$work/soak-entra.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do entra_port=$(sed -n 's/listening //p' "$work/soak-entra.out"); [ -n "$entra_port" ] && break; sleep 0.05; done
authority="http://127.0.0.1:$entra_port"
token=$("$PY" "$root/tests/interop/fake_entra.py" mint "$authority" $TENANT $CLIENT_ID)
# A small session cap: the hostile mix opens legacy sessions (with `Mcp-Method: initialize`)
# until it, then must get 503; RSS stays flat only if the cap holds.
env -i PATH="$PATH" MAX_SESSIONS=${SOAK_MAX_SESSIONS:-50} AZURE_CLIENT_ID=$CLIENT_ID AZURE_TENANT_ID=$TENANT AZURE_AUTHORITY_HOST="$authority" \
  "$root/target/release/mcp-server-entra" serve --port 0 >"$work/soak-server.log" 2>&1 &
server=$!; pids+=($server)
for _ in $(seq 1 100); do addr=$(sed -n 's/.*address=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/soak-server.log" | head -1); [ -n "$addr" ] && break; sleep 0.05; done
url="http://$addr/mcp"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }

"$root/target/release/examples/loadgen" run --url "$url" --token "$token" --mode current --connections 8 \
  --seconds "$seconds" --warmup 5 --json >"$work/soak-valid.json" &
valid=$!
sleep 5
"$root/target/release/examples/loadgen" hostile --url "$url" --token "$token" --connections 4 --seconds "$seconds" \
  >"$work/soak-hostile.json" &
hostile=$!
start_rss=$(rss); samples="$start_rss"
for _ in $(seq 5 5 "$seconds"); do sleep 5; samples="$samples $(rss)"; done
valid_ok=0; wait $valid && valid_ok=1
hostile_ok=0; wait $hostile && hostile_ok=1
end_rss=$(rss)
echo "valid load:   $(cat "$work/soak-valid.json")"
echo "hostile load: $(cat "$work/soak-hostile.json")"
echo "RSS (kB) every 5 s: $samples; start $start_rss, end $end_rss"
# No forged log line and no raw terminal escape in the server's log (the hostile mix tries both).
forged=$(grep -c '^2026-01-01T00:00:00Z' "$work/soak-server.log" || true)
escapes=$(grep -c $'\e' "$work/soak-server.log" || true)
echo "server log: $(wc -l <"$work/soak-server.log") lines, $forged forged, $escapes with a raw ESC"
limit=$(( start_rss + (start_rss / 5 > 4096 ? start_rss / 5 : 4096) ))
[ "$valid_ok" = 1 ] && [ "$hostile_ok" = 1 ] && [ "$end_rss" -le "$limit" ] && [ "$forged" = 0 ] && [ "$escapes" = 0 ] \
  && echo "soak: passed" || { echo "soak: FAILED"; exit 1; }
