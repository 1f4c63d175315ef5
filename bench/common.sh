# Shared by bench/run.sh, bench/soak.sh and bench/instructions.sh; sourced, never run. Expects
# `root` (the repository) and `work` (the script's output folder) to be set.
#
# Gives: the fake tenant's CLIENT_ID and TENANT; `pids` and an EXIT trap that stops every process
# added to it; `wait_for`; `bench_venv`, which sets PY; `start_fake_entra`, which sets `authority`
# and `token`. Everything talks to 127.0.0.1 only.

CLIENT_ID=11111111-2222-3333-4444-555555555555
TENANT=aaaaaaaa-bbbb-cccc-dddd-000000000001
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_for() { # wait_for FILE SED-EXPR [SECONDS, default 10] -> prints the first match
  local tries=$(( ${3:-10} * 20 ))
  for _ in $(seq 1 "$tries"); do
    local v; v=$(sed -n "$2" "$1" 2>/dev/null | head -1)
    if [ -n "$v" ]; then echo "$v"; return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for $1" >&2; cat "$1" >&2; return 1
}

bench_venv() { # creates target/bench/venv (the Python peer, PyJWT) if needed; sets PY
  local venv="$root/target/bench/venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/bench/requirements.txt"
  PY="$venv/bin/python"
}

start_fake_entra() { # start_fake_entra LOG -> sets authority (its base URL) and token (one it minted)
  "$PY" "$root/tests/interop/fake_entra.py" serve >"$1" 2>&1 &
  pids+=($!)
  authority="http://127.0.0.1:$(wait_for "$1" 's/listening //p')"
  token=$("$PY" "$root/tests/interop/fake_entra.py" mint "$authority" $TENANT $CLIENT_ID)
}
