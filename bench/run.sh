#!/usr/bin/env bash
# Reproduces every figure of BENCHMARKS.md in one run on this machine: throughput and latency of
# authenticated tools/call in three protocol modes, against our server, against the ceiling (a
# static-answer hyper server that does no work, examples/static_answer.rs: what the same load
# generator reaches on this machine) and against the Python reference peer (FastMCP 4.x, same
# tools, RS256 JWT verification), all measured in the same run; the dev verifier beside the Entra
# verifier (the cost of the Entra path on a verified-token cache hit); the server's CPU time per
# request; idle RSS and RSS with 1,000 and 10,000 open legacy sessions, and the heap per session
# counted by the allocator (examples/session_memory.rs); stdio cold start; criterion benches of
# verification and of one in-process tool call. Instructions per request (callgrind, for A/B of
# small changes): bench/instructions.sh.
#
#   bash bench/run.sh     # BENCH_SECONDS=10 per load run, BENCH_ROUNDS=5, BENCH_CONNECTIONS=16
#
# Loopback only; every load run is bounded in time. Results: target/bench/results.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/bench"
mkdir -p "$work"
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-5}
conns=${BENCH_CONNECTIONS:-16}
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

echo "== building (release)"
(cd "$root" && cargo build --release --quiet --bin mcp-server-entra --example loadgen --example static_answer --example session_memory)
BIN="$root/target/release/mcp-server-entra"
LOADGEN="$root/target/release/examples/loadgen"
STATIC="$root/target/release/examples/static_answer"
SESSION_MEMORY="$root/target/release/examples/session_memory"
bench_venv
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start_fake_entra "$work/fake-entra.out"

# The load comes from one address with one token, far past the default rate limits: every server
# runs with them off, except "limits", where they are on at rates no run reaches (every request
# is checked, none refused), which measures what checking costs.
no_limits=(RATE_LIMIT_PER_ADDRESS=off RATE_LIMIT_PER_PRINCIPAL=off)
huge_limits=(RATE_LIMIT_PER_ADDRESS=4000000000/s RATE_LIMIT_PER_PRINCIPAL=4000000000/s)
start_ours() { # start_ours NAME [ENV…] -> sets $pid and $url
  local log="$work/$1.log"; shift
  env -i PATH="$PATH" AZURE_CLIENT_ID=$CLIENT_ID AZURE_TENANT_ID=$TENANT AZURE_AUTHORITY_HOST="$authority" \
    MAX_SESSIONS=20000 "${no_limits[@]}" "$@" "$BIN" serve --port 0 >"$log" 2>&1 &
  pid=$!; pids+=($pid)
  url="http://$(wait_for "$log" 's/.*address=\(127\.0\.0\.1:[0-9]*\).*/\1/p')/mcp"
}
start_peer() { # start_peer MODE -> sets $pid and $url
  local port
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$PY" "$root/bench/python_peer/server.py" "$port" "$authority/common/discovery/v2.0/keys" \
    "$authority/$TENANT/v2.0" $CLIENT_ID "$1" >"$work/peer-$1.log" 2>&1 &
  pid=$!; pids+=($pid)
  url="http://127.0.0.1:$port/mcp"
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "$url" && return 0
    sleep 0.05
  done
  cat "$work/peer-$1.log"; return 1
}
load() { # load URL MODE [PID] -> one JSON line (with the server's CPU per request when PID is given)
  "$LOADGEN" run --url "$1" --token "$token" --mode "$2" --connections "$conns" --seconds "$seconds" --warmup 2 \
    ${3:+--server-pid "$3"} --json
}
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }

# Every server is started once; the load runs are interleaved round by round (ceiling, ours, dev
# in each round), so a slow stretch of the machine hits them alike, and each figure reported is
# the median over the rounds (ratios: the median of the per-round ratios, with their range).
echo "== starting the ceiling (static answers, no work) and our server in three set-ups"
"$STATIC" >"$work/static.out" 2>&1 &
static_pid=$!; pids+=($static_pid)
static_url="http://$(wait_for "$work/static.out" 's/listening //p')/mcp"
start_ours ours-sessions; sessions_pid=$pid; sessions_url=$url
start_ours ours-stateless LEGACY_SESSIONS=false; stateless_pid=$pid; stateless_url=$url
start_ours ours-limits "${huge_limits[@]}"; limits_pid=$pid; limits_url=$url
# Traces exported for every request (sampling 1.0) to an OTLP sink on the same cores.
python3 "$root/bench/otlp_sink.py" >"$work/otlp-sink.out" 2>&1 &
pids+=($!)
sink_port=$(wait_for "$work/otlp-sink.out" 's/listening //p')
start_ours ours-traced OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" OTEL_TRACES_SAMPLER=always_on; traced_pid=$pid; traced_url=$url
# Legacy sessions shared in a real Redis (Debian's redis-server, on a Unix socket): what the
# store costs a session (one round trip per request keeps it alive and sees a DELETE elsewhere).
redis_bin=$(bash "$root/tests/redis/ensure.sh")
"$redis_bin" --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --save '' --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ "$(redis-cli -s "$work/redis.sock" ping 2>/dev/null)" = PONG ] && break; sleep 0.05; done
start_ours ours-redis REDIS_URL="redis+unix://$work/redis.sock"; redis_pid=$pid; redis_url=$url
# The dev verifier with the same token: what the Entra path costs on a verified-token cache hit.
env -i PATH="$PATH" MCP_DEV_TOKEN="$token" "${no_limits[@]}" "$BIN" serve --dev --port 0 >"$work/ours-dev.log" 2>&1 &
dev_pid=$!; pids+=($dev_pid)
dev_url="http://$(wait_for "$work/ours-dev.log" 's/.*address=\(127\.0\.0\.1:[0-9]*\).*/\1/p')/mcp"
results="$work/rounds.txt"; : >"$results"
for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds"
  for run in "ceiling current $static_url $static_pid" "ours current $sessions_url $sessions_pid" \
    "dev current $dev_url $dev_pid" "limits current $limits_url $limits_pid" "traced current $traced_url $traced_pid" \
    "ceiling legacy $static_url $static_pid" \
    "ours legacy $sessions_url $sessions_pid" "redis legacy $redis_url $redis_pid" "ceiling stateless $static_url $static_pid" \
    "ours stateless $stateless_url $stateless_pid"; do
    read -r who mode u p <<<"$run"
    line=$(load "$u" "$mode" "$p"); echo "$who $mode $line"
    echo "$round $who $mode $line" >>"$results"
  done
done
loaded_rss=$(rss_kb "$sessions_pid")
kill "$static_pid" "$sessions_pid" "$stateless_pid" "$dev_pid" "$limits_pid" "$traced_pid" "$redis_pid"

# median WHO MODE FIELD -> the median of FIELD over the rounds
median() {
  awk -v w="$1" -v m="$2" '$2 == w && $3 == m' "$results" | sed -n "s/.*\"$3\":\([0-9.]*\).*/\1/p" | sort -g \
    | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else printf "%.6g\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ratio WHO MODE BASE-WHO BASE-MODE -> "median% (min–max%)" of the per-round rps ratios
ratio_rounds() {
  for r in $(seq 1 "$rounds"); do
    a=$(awk -v r="$r" -v w="$1" -v m="$2" '$1 == r && $2 == w && $3 == m' "$results" | sed -n 's/.*"rps":\([0-9.]*\).*/\1/p')
    b=$(awk -v r="$r" -v w="$3" -v m="$4" '$1 == r && $2 == w && $3 == m' "$results" | sed -n 's/.*"rps":\([0-9.]*\).*/\1/p')
    awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.1f\n", 100 * a / b }'
  done | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f%% (%.0f–%.0f%%)", m, v[1], v[NR] }'
}

echo "== python peer (FastMCP), one run per mode"
start_peer stateless
peer_current=$(load "$url" current); echo "$peer_current"
peer_stateless=$(load "$url" stateless); echo "$peer_stateless"
kill "$pid"
start_peer sessions
peer_legacy=$(load "$url" legacy); echo "$peer_legacy"
kill "$pid"

echo "== memory"
# One principal holds every session here: its shares are lifted (they would close the oldest).
start_ours ours-memory MAX_SESSIONS_PER_PRINCIPAL=20000 MAX_STREAMS_PER_PRINCIPAL=20000
sleep 1; rss_idle=$(rss_kb "$pid")
"$LOADGEN" sessions --url "$url" --token "$token" --count 1000 --hold 600 >"$work/s1000.out" &
holder=$!; pids+=($holder)
wait_for "$work/s1000.out" 's/\([0-9]*\) sessions open.*/\1/p' >/dev/null
rss_1000=$(rss_kb "$pid")
"$LOADGEN" sessions --url "$url" --token "$token" --count 9000 --hold 600 >"$work/s9000.out" &
holder2=$!; pids+=($holder2)
for _ in $(seq 1 1200); do grep -q "sessions open" "$work/s9000.out" && break; sleep 0.05; done
rss_10000=$(rss_kb "$pid")
kill "$holder" "$holder2" "$pid"
# The same, counted by the allocator instead of RSS, and the floor of rmcp's service loop alone.
heap=$("$SESSION_MEMORY" 1000); echo "$heap"

echo "== stdio cold start"
cold=$("$LOADGEN" coldstart --binary "$BIN" --runs 30 --json); echo "$cold"

echo "== criterion (verification, one in-process tool call)"
(cd "$root" && cargo bench --quiet --bench verify --bench tool_call -- --warm-up-time 1 --measurement-time 3 2>/dev/null) \
  | grep -E "^[a-z/].*|time:" | tee "$work/criterion.txt"

ratio() { awk -v a="$1" -v b="$(field "$2" rps)" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else print "n/a" }'; }
row() { # row LABEL MODE PEER-JSON
  echo "| $1 | $(median ceiling "$2" rps) | $(median ours "$2" rps) | $(ratio_rounds ours "$2" ceiling "$2") | $(median ours "$2" p50_ms) | $(median ours "$2" p99_ms) | $(median ours "$2" server_cpu_us) | $(median ceiling "$2" server_cpu_us) | $(field "$3" rps) | $(field "$3" p99_ms) | $(ratio "$(median ours "$2" rps)" "$3") |"
}
per_session() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (a - b) / n }'; }
{
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); load generator on the same cores."
  echo "Authenticated tools/call roll_dice, $conns connections, $seconds s per load run, every answer checked;"
  echo "ceiling and ours: the median of $rounds interleaved rounds (the ratio's range over the rounds in brackets); server CPU: user + system time of the"
  echo "server process per request. Python peer: one run per mode."
  echo
  echo "| mode | ceiling req/s | ours req/s | ours / ceiling | ours p50 ms | ours p99 ms | ours CPU µs/req | ceiling CPU µs/req | Python peer req/s | peer p99 ms | ours / peer |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  row "2026-07-28 (stateless)" current "$peer_current"
  row "2025-11-25 with sessions" legacy "$peer_legacy"
  row "2025-11-25 stateless, JSON" stateless "$peer_stateless"
  echo
  echo "Traces exported for every request (OTLP/HTTP to a sink on the same cores, OTEL_TRACES_SAMPLER=always_on) vs off (2026-07-28): $(median traced current rps) vs $(median ours current rps) req/s, with / without $(ratio_rounds traced current ours current); server CPU $(median traced current server_cpu_us) vs $(median ours current server_cpu_us) µs per request"
  echo
  echo "Rate limits checked on every request (per address and per principal, at rates no run reaches) vs off (2026-07-28): $(median limits current rps) vs $(median ours current rps) req/s, with / without $(ratio_rounds limits current ours current); server CPU $(median limits current server_cpu_us) vs $(median ours current server_cpu_us) µs per request"
  echo
  echo "Legacy sessions shared in Redis (REDIS_URL, a local redis-server on a Unix socket) vs kept in memory (2025-11-25 with sessions): $(median redis legacy rps) vs $(median ours legacy rps) req/s, Redis / memory $(ratio_rounds redis legacy ours legacy); server CPU $(median redis legacy server_cpu_us) vs $(median ours legacy server_cpu_us) µs per request; p99 $(median redis legacy p99_ms) vs $(median ours legacy p99_ms) ms"
  echo
  echo "Entra verifier vs dev verifier (2026-07-28, same token, cache hit): $(median ours current rps) vs $(median dev current rps) req/s, Entra / dev $(ratio_rounds ours current dev current); server CPU $(median ours current server_cpu_us) vs $(median dev current server_cpu_us) µs per request; p99 $(median ours current p99_ms) vs $(median dev current p99_ms) ms"
  echo
  echo "| memory | value |"
  echo "|---|---|"
  echo "| idle RSS | $((rss_idle / 1024)) MB ($rss_idle kB) |"
  echo "| RSS with 1,000 legacy sessions | $((rss_1000 / 1024)) MB ($(per_session "$rss_1000" "$rss_idle" 1000) kB per session) |"
  echo "| RSS with 10,000 legacy sessions | $((rss_10000 / 1024)) MB ($(per_session "$rss_10000" "$rss_idle" 10000) kB per session) |"
  echo "| RSS after the load runs above | $((loaded_rss / 1024)) MB ($loaded_rss kB) |"
  echo "| heap per legacy session, counted by the allocator (examples/session_memory.rs, 1,000 sessions) | $(field "$heap" http_bytes_per_session) bytes |"
  echo "| of which rmcp's service loop alone (any session manager's floor) | $(field "$heap" service_bytes_per_session) bytes |"
  echo
  echo "stdio cold start (spawn → first tools/call result, 30 runs): median $(field "$cold" median_ms) ms, min $(field "$cold" min_ms) ms"
} | tee "$work/results.md"
