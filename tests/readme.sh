#!/usr/bin/env bash
# Runs README.md's commands as written, wherever they can run here, and checks what the README
# promises:
#   1. quick start: the dev server, /health, the example client's `whoami`;
#   2. the raw `curl` tools/call for 2026-07-28 (exact answer);
#   3. the local issuer: the real Entra verifier against `examples/local_entra.rs`, a minted token
#      answered with the minted identity, an expired one refused with 401 "expired";
#   4. "Add a tool and protect it": its code, declaration and `[tools.add_note]` table applied to
#      a copy of the repository, built, and run with the README's commands: refused with the exact
#      challenge without the scope, run with it, refused again under the TOML override;
#   5. every relative link of README.md, CONTRIBUTING.md and docs/*.md resolves (file and anchor).
# The test command (`cargo test --workspace`) is CI's own step. Loopback only (ports 8000-8004,
# 8400, as the README writes them; each must be free, so no earlier server answers in its place),
# bounded in time, idempotent on a fresh clone.
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
copy=$(mktemp -d)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$logs" "$copy"
}
trap cleanup EXIT

# Starts `$1` (a simple command, as the README writes it) in the background, logging to $logs/$2.
# A port the command names must be free: otherwise a leftover server would answer for it.
start() {
  local port
  for port in $(grep -oE -- '--port [0-9]+' <<<"$1" | cut -d' ' -f2); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then echo "port $port is taken before $2 starts"; exit 1; fi
  done
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

echo "== add a tool and protect it"
# The repository as checked out (tracked and new files), with the README's steps applied.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy"
python3 - "$copy/src/tools.rs" "$(block add-tool-args)" "$(block add-tool-code)" "$(block add-tool-declare)" <<'PY'
import sys
path, args, code, declare = sys.argv[1:]
src = open(path).read()
router = "#[tool_router]\nimpl EntraMcpServer {\n"
declared = "pub fn declared_requirements() -> Vec<(&'static str, Requirement)> {\n    vec![\n"
for marker in (router, declared):
    if src.count(marker) != 1:
        sys.exit(f"src/tools.rs: the README's steps name a place that is not there: {marker!r}")
src = src.replace(router, args + "\n\n" + router + code + "\n\n")
src = src.replace(declared, declared + declare + "\n")
open(path, "w").write(src)
PY
block add-tool-config >"$copy/notes.toml"
# Its own target directory: the copy's crates must not overwrite this checkout's binaries.
export CARGO_TARGET_DIR="$PWD/target/readme-add-tool"
(cd "$copy" && cargo build --quiet --bin mcp-server-entra)
mapfile -t try_cmds < <(block add-tool-try)
[ "${#try_cmds[@]}" = 2 ] || { echo "README: add-tool-try should hold two commands"; exit 1; }
start "-C $copy ${try_cmds[0]}" without
wait_for http://localhost:8002/health without
start "-C $copy ${try_cmds[1]}" with
wait_for http://localhost:8003/health with
# Step 6: its table and command.
start "-C $copy $(block add-tool-override)" override
wait_for http://localhost:8004/health override
grep -qF 'authorization policy: tool add_note: users need scopes Notes.Admin' "$logs/override.err" \
  || { echo "the override's policy block is not as the README says:"; cat "$logs/override.err"; exit 1; }
call_note() { # port -> the answer's status line, headers and body
  curl -si "http://localhost:$1/mcp" -H 'Authorization: Bearer dev-notes' \
    -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -H 'Mcp-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: add_note' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note","arguments":{"text":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"curl","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}'
}
scope=$(grep -o 'scope="api://mcp-server-entra-dev/[^"]*Notes.Write"' README.md | head -1)
[ -n "$scope" ] || { echo "README: the scope of the add_note challenge is not written out"; exit 1; }
out=$(call_note 8002)
grep -q '^HTTP/1.1 403' <<<"$out" || { echo "add_note without Notes.Write was not refused:"; echo "$out"; exit 1; }
challenge=$(grep -i '^www-authenticate: ' <<<"$out")
{ grep -qF 'error="insufficient_scope"' <<<"$challenge" && grep -qF "$scope" <<<"$challenge"; } || { printf 'add_note challenge:\n%s\nREADME says: %s\n' "$challenge" "$scope"; exit 1; }
list_tools() { # port -> the tools/list answer
  curl -s "http://localhost:$1/mcp" -H 'Authorization: Bearer dev-notes' \
    -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -H 'Mcp-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/list' \
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"curl","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}'
}
listed=$(list_tools 8002)
grep -qF '"name":"whoami"' <<<"$listed" || { echo "tools/list did not answer:"; echo "$listed"; exit 1; }
if grep -qF '"name":"add_note"' <<<"$listed"; then echo "tools/list shows add_note to a caller without Notes.Write"; exit 1; fi
grep -qF '"name":"add_note"' <<<"$(list_tools 8003)" || { echo "tools/list hides add_note from a caller with Notes.Write"; exit 1; }
out=$(call_note 8003)
grep -qF '"text":"Dev User noted: hi"' <<<"$out" || { echo "add_note with Notes.Write did not run:"; echo "$out"; exit 1; }
out=$(call_note 8004)
{ grep -q '^HTTP/1.1 403' <<<"$out" && grep -qF 'Notes.Admin' <<<"$out"; } || { echo "the [tools.add_note] override was not applied:"; echo "$out"; exit 1; }
unset CARGO_TARGET_DIR
echo "add_note: refused without the scope, run with it, overridden by the TOML table"

echo "== relative links"
python3 - README.md CONTRIBUTING.md docs/*.md <<'PY'
import os, re, sys
def slugs(path):
    found = set()
    text = re.sub(r"```.*?```", "", open(path).read(), flags=re.S)
    for line in text.splitlines():
        m = re.match(r"#+ (.*)", line)
        if m:
            title = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            found.add(title.replace(" ", "-"))
    return found
bad = []
for doc in sys.argv[1:]:
    text = re.sub(r"```.*?```", "", open(doc).read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(full):
            bad.append(f"{doc}: {target}: no such file")
        elif anchor and full.endswith(".md") and anchor not in slugs(full):
            bad.append(f"{doc}: {target}: no such section")
if bad:
    sys.exit("\n".join(bad))
print(f"{len(sys.argv) - 1} documents, every relative link resolves")
PY

echo "README commands: ok"
