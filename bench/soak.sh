#!/usr/bin/env bash
# Soak: SOAK_SECONDS (default 60) of full load on the release server (Entra verifier, fake Entra),
# valid tools/call on 8 connections plus hostile requests on 4 (bad tokens, ambiguous requests,
# encoded query tokens, sessions past MAX_SESSIONS, log-forging claims), 2,000 idle h2c connections
# (the HTTP/2 preface, then nothing), sampling RSS every 5 s.
# Passes when no valid request fails, every hostile one gets its expected refusal, and RSS at the
# end is within 20% (or 4 MB) of RSS after warm-up, and the server closed every idle h2c
# connection (CONNECTION_IDLE_TIMEOUT_SECS=5 here). Loopback only, bounded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/bench"
mkdir -p "$work"
seconds=${SOAK_SECONDS:-60}
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

(cd "$root" && cargo build --release --quiet --bin mcp-server-entra --example loadgen)
bench_venv
start_fake_entra "$work/soak-entra.out"
# A small session cap: the hostile mix opens legacy sessions (with `Mcp-Method: initialize`)
# until it, then must get 503; RSS stays flat only if the cap holds.
# Rate limits off: the load comes from one address and one token, far past them (their cost is
# measured in bench/run.sh, their behaviour in tests/it/rate_limits.rs).
env -i PATH="$PATH" RATE_LIMIT_PER_ADDRESS=off RATE_LIMIT_PER_PRINCIPAL=off MAX_SESSIONS=${SOAK_MAX_SESSIONS:-50} CONNECTION_IDLE_TIMEOUT_SECS=5 AZURE_CLIENT_ID=$CLIENT_ID AZURE_TENANT_ID=$TENANT AZURE_AUTHORITY_HOST="$authority" \
  "$root/target/release/mcp-server-entra" serve --port 0 >"$work/soak-server.log" 2>&1 &
server=$!; pids+=($server)
url="http://$(wait_for "$work/soak-server.log" 's/.*address=\(127\.0\.0\.1:[0-9]*\).*/\1/p' 5)/mcp"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }

"$root/target/release/examples/loadgen" run --url "$url" --token "$token" --mode current --connections 8 \
  --seconds "$seconds" --warmup 5 --json >"$work/soak-valid.json" &
valid=$!
# Both loads warm up together for 5 s, so the RSS baseline holds what the hostile mix is allowed to
# keep (up to MAX_SESSIONS legacy sessions, ~90 kB each): taken before it, the cap filling up read
# as growth and failed the check at any duration.
"$root/target/release/examples/loadgen" hostile --url "$url" --token "$token" --connections 4 \
  --seconds $((seconds + 5)) >"$work/soak-hostile.json" &
hostile=$!
# Idle h2c peers: each sends the 33-byte preface and SETTINGS, then waits for the server to close.
python3 - "${url#http://}" >"$work/soak-h2c.txt" <<'PY' &
import selectors, socket, sys, time
host, port = sys.argv[1].split("/")[0].rsplit(":", 1)
preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
sel, opened, started = selectors.DefaultSelector(), 0, time.monotonic()
for _ in range(2000):
    s = socket.create_connection((host, int(port)))
    s.sendall(preface)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    opened += 1
closed, deadline = 0, time.monotonic() + 60
while closed < opened and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=1):
        try:
            data = key.fileobj.recv(65536)
        except OSError:
            data = b""
        if not data:
            sel.unregister(key.fileobj); key.fileobj.close(); closed += 1
print(f"{opened} opened, {closed} closed by the server within {time.monotonic() - started:.1f} s")
PY
h2c=$!
sleep 5
start_rss=$(rss); samples="$start_rss"
for _ in $(seq 5 5 "$seconds"); do sleep 5; samples="$samples $(rss)"; done
valid_ok=0; wait $valid && valid_ok=1
hostile_ok=0; wait $hostile && hostile_ok=1
wait $h2c || true
end_rss=$(rss)
echo "valid load:   $(cat "$work/soak-valid.json")"
echo "hostile load: $(cat "$work/soak-hostile.json")"
echo "idle h2c:     $(cat "$work/soak-h2c.txt")"
h2c_ok=0; grep -q '^2000 opened, 2000 closed' "$work/soak-h2c.txt" && h2c_ok=1
echo "RSS (kB) every 5 s: $samples; start $start_rss, end $end_rss"
# No forged log line and no raw terminal escape in the server's log (the hostile mix tries both).
forged=$(grep -c '^2026-01-01T00:00:00Z' "$work/soak-server.log" || true)
escapes=$(grep -c $'\e' "$work/soak-server.log" || true)
echo "server log: $(wc -l <"$work/soak-server.log") lines, $forged forged, $escapes with a raw ESC"
limit=$(( start_rss + (start_rss / 5 > 4096 ? start_rss / 5 : 4096) ))
[ "$valid_ok" = 1 ] && [ "$hostile_ok" = 1 ] && [ "$h2c_ok" = 1 ] && [ "$end_rss" -le "$limit" ] && [ "$forged" = 0 ] && [ "$escapes" = 0 ] \
  && echo "soak: passed" || { echo "soak: FAILED"; exit 1; }
