#!/usr/bin/env bash
# CPU instructions per request, counted by valgrind callgrind in the server process: a
# deterministic per-request cost for A/B comparisons of small optimisations, where short load runs
# on this machine vary by ±25% run to run.
#
# For each case the release server runs under callgrind twice, serving N1 and then N2 authenticated
# tools/call roll_dice on one connection without warm-up (`loadgen run --requests N --warmup 0`);
# instructions per request = (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up, shutdown and the first
# connection cancel out. Only user-space instructions of the server process are counted (the
# kernel is not visible to callgrind; a syscall counts as the instructions that issue it).
#
# The server runs with one tokio worker (INSTR_WORKERS=1, passed as TOKIO_WORKER_THREADS): with
# two, which thread runs and frees what depends on timing, and jemalloc's per-thread caches make
# the count vary by about ±1.5% run to run; with one, by about ±0.1%.
#
#   bash bench/instructions.sh                     # builds release (under /tmp/cargo.lock) first
#   BIN=/tmp/base/mcp-server-entra LOADGEN=target/release/examples/loadgen bash bench/instructions.sh
#   INSTR_N1=300 INSTR_N2=1300 INSTR_CASES="entra dev" bash bench/instructions.sh
#
# Cases (INSTR_CASES, default all): entra (2026-07-28, Entra verifier, verified-token cache hit),
# dev (2026-07-28, dev verifier), sessions (2025-11-25 with sessions), stateless (2025-11-25,
# LEGACY_SESSIONS=false). For entra, also a by-layer breakdown of the N2 - N1 difference of
# exclusive instructions per function, and the anatomy of a request (inclusive instructions per
# stage: hyper, router, auth, verification, rmcp's parse, validation, service and serialization).
# Installs valgrind (Debian package) and the bench venv when missing. INSTR_ENV adds server environment (e.g.
# "_RJEM_MALLOC_CONF=dirty_decay_ms:-1"); PY is a python with PyJWT (default: the bench venv).
# Rate limits are off (one address, one token) unless INSTR_ENV turns them on, e.g.
# INSTR_ENV="RATE_LIMIT_PER_ADDRESS=4000000000/s RATE_LIMIT_PER_PRINCIPAL=4000000000/s".
# Do not run this script itself under flock: it takes /tmp/cargo.lock only to build. Loopback
# only; every valgrind run is bounded (INSTR_TIMEOUT, 300 s). Results: target/bench/instructions.md
# (the callgrind files and logs stay in target/bench/instr/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/bench/instr"
mkdir -p "$work"
n1=${INSTR_N1:-300}
n2=${INSTR_N2:-1300}
cases=${INSTR_CASES:-entra dev sessions stateless}
limit=${INSTR_TIMEOUT:-300}
workers=${INSTR_WORKERS:-1}
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
  echo "== installing valgrind (Debian package)" >&2
  (apt-get install -y -q valgrind >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q valgrind >/dev/null; }) \
    || { echo "needs valgrind and callgrind_annotate, and could not install them (apt-get install valgrind)" >&2; exit 1; }
fi
[ -n "${PY:-}" ] || bench_venv
if [ -z "${BIN:-}" ] || [ -z "${LOADGEN:-}" ]; then
  echo "== building (release, under /tmp/cargo.lock)" >&2
  (cd "$root" && flock /tmp/cargo.lock cargo build --release --quiet --bin mcp-server-entra --example loadgen)
fi
BIN=${BIN:-$root/target/release/mcp-server-entra}
LOADGEN=${LOADGEN:-$root/target/release/examples/loadgen}

start_fake_entra "$work/fake-entra.out"

measure() { # measure NAME N LOADGEN-MODE [ENV… --] [SERVER-ARGS…] -> prints total Ir of the server
  local name=$1 n=$2 mode=$3; shift 3
  local envs=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  args=("$@")
  local log="$work/$name-$n.log" out="$work/$name-$n.callgrind"
  rm -f "$out"
  # The whole environment is fixed (env -i), so runs differ only in N.
  env -i PATH="$PATH" AZURE_CLIENT_ID=$CLIENT_ID AZURE_TENANT_ID=$TENANT AZURE_AUTHORITY_HOST="$authority" \
    TOKIO_WORKER_THREADS="$workers" RATE_LIMIT_PER_ADDRESS=off RATE_LIMIT_PER_PRINCIPAL=off ${INSTR_ENV:-} "${envs[@]}" timeout --kill-after=10 "$limit" \
    valgrind --tool=callgrind --cache-sim=no --callgrind-out-file="$out" \
    "$BIN" serve --port 0 "${args[@]}" >"$log" 2>&1 &
  local pid=$!; pids+=($pid)
  local url
  url="http://$(wait_for "$log" 's/.*address=\(127\.0\.0\.1:[0-9]*\).*/\1/p' 120)/mcp"
  timeout "$limit" "$LOADGEN" run --url "$url" --token "$token" --mode "$mode" --connections 1 \
    --warmup 0 --requests "$n" --json >"$work/$name-$n.loadgen.json"
  grep -q "\"requests\":$n[,}]" "$work/$name-$n.loadgen.json" \
    || { echo "loadgen did not complete $n requests:" >&2; cat "$work/$name-$n.loadgen.json" >&2; return 1; }
  kill -TERM "$pid" # timeout forwards it to valgrind, i.e. the server: graceful shutdown, then the dump
  wait "$pid" || { echo "server under valgrind exited with $?:" >&2; tail -20 "$log" >&2; return 1; }
  sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out" | head -1 | grep . \
    || sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out" | head -1 | grep . \
    || { echo "no summary in $out" >&2; return 1; }
}

# Ir per function of one callgrind file, exclusive (second argument "no", the default) or
# inclusive ("yes"):
# "IR<TAB>FUNCTION" lines.
functions() {
  callgrind_annotate --threshold=100 --inclusive="${2:-no}" "$1" 2>/dev/null | awk '
    /^-+$/ { dashes++; next }
    dashes >= 3 && $1 ~ /^[0-9][0-9,]*$/ && !/PROGRAM TOTALS/ {
      ir = $1; gsub(",", "", ir)
      line = $0; sub(/^ *[0-9,]+ +(\([ 0-9.]+%\) +)?/, "", line)   # drop the count and the percentage
      sub(/ \[[^]]*\]$/, "", line)                                   # drop the object file
      sub(/^[^:]*:/, "", line)                                       # drop the source file
      print ir "\t" line
    }'
}

# Layer of a demangled symbol; generic std/core/alloc code counts for the crate in its type arguments.
layers_awk='
function crate_layer(c) {
  if (c ~ /^(mcp_server_entra.*|verifiers|transports)$/) return "ours (mcp_server_entra, verifiers, transports)"
  if (c == "rmcp") return "rmcp"
  if (c ~ /^(hyper|hyper_util|http|h2|httparse|http_body|http_body_util)$/) return "hyper / http / h2 / httparse"
  if (c ~ /^(serde|serde_core|serde_json)$/) return "serde / serde_json"
  if (c ~ /^(tracing|tracing_core|tracing_subscriber|metrics|metrics_util|metrics_exporter_prometheus)$/) return "tracing / metrics"
  if (c ~ /^(tokio|tokio_util|futures|futures_util|futures_core|futures_channel|mio)$/) return "tokio / futures / mio"
  if (c ~ /^(tower|tower_http|tower_service|tower_layer|axum|axum_core)$/) return "tower / axum"
  if (c == "jsonwebtoken") return "jsonwebtoken"
  if (c ~ /^(aws_lc_rs|aws_lc_sys|ring|sha2)$/) return "SHA-256 / aws-lc / ring"
  return ""
}
function layer(s,   rest, c, l) {
  if (s ~ /mem(cpy|move|set|cmp)|bcmp/) return "memcpy/memmove/memset"
  if (s ~ /_rjem_|jemalloc|^je_|^malloc$|^free$|^calloc$|^realloc$|__rust_(alloc|dealloc|realloc)/) return "allocator (jemalloc)"
  if (s ~ /aws_lc|sha256|SHA256/) return "SHA-256 / aws-lc / ring"
  if (s ~ / as serde(_json)?::/) return "serde / serde_json"
  # The first crate named, skipping std/core/alloc (generic std code counts for its type arguments).
  rest = s
  while (match(rest, /[A-Za-z_][A-Za-z0-9_]*::/)) {
    c = substr(rest, RSTART, RLENGTH - 2); rest = substr(rest, RSTART + RLENGTH)
    if (c ~ /^(core|alloc|std|impl|dyn)$/ || c ~ /^[A-Z]/) continue
    l = crate_layer(c)
    return l != "" ? l : "other (std, libc, …)"
  }
  return "other (std, libc, …)"
}'

# breakdown FILE1 FILE2 N -> markdown rows of the per-layer difference per request, and the top functions
breakdown() {
  local f1="$work/functions-1.tsv" f2="$work/functions-2.tsv"
  functions "$1" >"$f1"; functions "$2" >"$f2"
  awk -F'\t' -v n="$3" "$layers_awk"'
    FNR == NR { a[$2] += $1; next }
    { b[$2] += $1 }
    END {
      for (f in b) d[f] = b[f] - a[f]
      for (f in a) if (!(f in b)) d[f] = -a[f]
      for (f in d) { l = layer(f); by[l] += d[f]; total += d[f] }
      for (l in by) printf "%s\t%.0f\t%.1f\n", l, by[l] / n, 100 * by[l] / total
      printf "TOTAL\t%.0f\t100.0\n", total / n
      for (f in d) printf "FN\t%.0f\t%s\n", d[f] / n, f > "/dev/stderr"
    }' "$f1" "$f2" 2>"$work/functions-delta.tsv" | sort -t$'\t' -k2,2nr
}

# The stages of one 2026-07-28 request, outermost first: "DEPTH<TAB>LABEL<TAB>FUNCTION" (the
# function's inclusive cost is the stage's, everything it calls included).
stages='0	the connection task (hyper reads, parses, writes; everything below)	transports::http::server::serve_connection::{{closure}}
1	router: ambiguity, Host and Origin checks, metrics	transports::http::router::route::{{closure}}
2	bearer auth: token, session binding, tool gate	<transports::http::auth::BearerAuth<S> as tower_service::Service<http::request::Request<B>>>::call::{{closure}}
3	Entra verification, a cache hit: SHA-256 of the token (valgrind hides SHA-NI; natively far cheaper), one lookup	<verifiers::entra::EntraVerifier as verifiers::verifier::TokenVerifier>::verify::{{closure}}
3	content negotiation	<transports::http::negotiate::Negotiate<S> as tower_service::Service<http::request::Request<B>>>::call::{{closure}}
4	rmcp: handle_post	rmcp::transport::streamable_http_server::tower::StreamableHttpService<S,M>::handle_post::{{closure}}
5	JSON-RPC parse (untagged enums: every variant tried)	<rmcp::model::JsonRpcMessage<Req,Resp,Noti> as serde_core::de::Deserialize>::deserialize
5	Mcp-* header validation (the message re-serialized to a Value)	rmcp::transport::streamable_http_server::tower::validate_standard_headers
5	per-request service: set-up, spawns, channels (the handler runs in a spawned task, below)	rmcp::transport::streamable_http_server::tower::StreamableHttpService<S,M>::serve_negotiated_request_directly::{{closure}}
5	JSON-RPC serialize	rmcp::model::_::<impl serde_core::ser::Serialize for rmcp::model::JsonRpcMessage<Req,Resp,Noti>>::serialize
0	in the task rmcp spawns per request (outside the connection task): handler dispatch (tool router, arguments)	rmcp::handler::server::<impl rmcp::service::Service<rmcp::service::server::RoleServer> for H>::handle_request::{{closure}}
1	the tool itself (roll_dice)	mcp_server_entra::tools::EntraMcpServer::roll_dice::{{closure}}'

# anatomy FILE1 FILE2 N -> markdown rows: each stage's inclusive instructions per request
anatomy() {
  functions "$1" yes >"$work/inclusive-1.tsv"; functions "$2" yes >"$work/inclusive-2.tsv"
  awk -F'\t' -v n="$3" '
    FILENAME == "-" { depth[++k] = $1; label[k] = $2; fn[k] = $3; next }
    FILENAME ~ /inclusive-1/ { a[$2] = $1; next }
    { b[$2] = $1 }
    END {
      for (i = 1; i <= k; i++) {
        pad = ""; for (d = 0; d < depth[i]; d++) pad = pad "&nbsp;&nbsp;"
        printf "| %s%s | %.0f |\n", pad, label[i], (b[fn[i]] - a[fn[i]]) / n
      }
    }' - "$work/inclusive-1.tsv" "$work/inclusive-2.tsv" <<<"$stages"
}

per_request() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) / n }'; }
fixed() { awk -v a="$1" -v p="$2" -v n="$3" 'BEGIN { printf "%.1f", (a - p * n) / 1e6 }'; }

declare -A label=(
  [entra]="2026-07-28 Entra"
  [dev]="2026-07-28 dev verifier"
  [sessions]="2025-11-25 sessions"
  [stateless]="2025-11-25 stateless"
)
rows=()
layer_rows=""
anatomy_rows=""
top_rows=""
started=$SECONDS
for c in $cases; do
  case $c in
    entra) spec=(current --) ;;
    dev) spec=(current MCP_DEV_TOKEN="$token" -- --dev) ;;
    sessions) spec=(legacy --) ;;
    stateless) spec=(stateless LEGACY_SESSIONS=false --) ;;
    *) echo "unknown case $c (entra dev sessions stateless)" >&2; exit 2 ;;
  esac
  echo "== ${label[$c]}: N=$n1" >&2
  ir1=$(measure "$c" "$n1" "${spec[@]}")
  echo "== ${label[$c]}: N=$n2" >&2
  ir2=$(measure "$c" "$n2" "${spec[@]}")
  per=$(per_request "$ir1" "$ir2" $((n2 - n1)))
  echo "   Ir($n1)=$ir1 Ir($n2)=$ir2 -> $per instructions per request" >&2
  rows+=("| ${label[$c]} | $per | $ir1 | $ir2 | $(fixed "$ir1" "$per" "$n1") |")
  if [ "$c" = entra ]; then
    layer_rows=$(breakdown "$work/entra-$n1.callgrind" "$work/entra-$n2.callgrind" $((n2 - n1)) \
      | awk -F'\t' '$1 != "TOTAL" { printf "| %s | %s | %s%% |\n", $1, $2, $3 } $1 == "TOTAL" { t = $2 } END { printf "| total of functions above the threshold | %s | 100%% |\n", t }')
    anatomy_rows=$(anatomy "$work/entra-$n1.callgrind" "$work/entra-$n2.callgrind" $((n2 - n1)))
    top_rows=$(sed 's/^FN\t//' "$work/functions-delta.tsv" | sort -t$'\t' -k1,1nr | awk 'NR <= 25' \
      | awk -F'\t' '{ f = $2; gsub(/\|/, "\\|", f); if (length(f) > 150) f = substr(f, 1, 147) "..."; printf "| %s | `%s` |\n", $1, f }')
  fi
done

{
  echo "Instructions per request (valgrind $(valgrind --version | sed 's/valgrind-//') callgrind, server process, user space only;"
  echo "slope between $n1 and $n2 requests on one connection, no warm-up; $workers tokio worker thread(s))."
  echo "Server: \`$BIN\`."
  echo
  echo "| case | instructions per request | Ir at N=$n1 | Ir at N=$n2 | fixed cost (start-up, shutdown), M instructions |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  if [ -n "$layer_rows" ]; then
    echo
    echo "2026-07-28 Entra, by layer: exclusive instructions per request (N=$n2 minus N=$n1, every function of"
    echo "\`callgrind_annotate --threshold=100\`). A symbol's layer is the first crate it names after std/core/alloc, so"
    echo "generic std code counts for its type arguments (where the symbol shows them) and derived serde impls count"
    echo "for serde. The kernel's share of a request is not visible to callgrind."
    echo
    echo "| layer | instructions per request | share |"
    echo "|---|---|---|"
    echo "$layer_rows"
    echo
    echo "2026-07-28 Entra, the anatomy of a request: inclusive instructions per request of each stage (a stage"
    echo "includes the stages indented under it; what rmcp runs in the tasks it spawns is outside the connection"
    echo "task's tree, and the scheduler's own work is in neither)."
    echo
    echo "| stage | instructions per request |"
    echo "|---|---|"
    echo "$anatomy_rows"
    echo
    echo "Top functions (exclusive instructions per request):"
    echo
    echo "| instructions | function |"
    echo "|---|---|"
    echo "$top_rows"
  fi
  echo
  echo "($(( SECONDS - started )) s for $(wc -w <<<"$cases") cases.)"
} | tee "$root/target/bench/instructions.md"
