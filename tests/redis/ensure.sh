#!/usr/bin/env bash
# Makes sure Redis's server and client are installed (Debian's redis-server package), for the
# tests that share state between replicas. Prints the server's path. Bounded in time.
set -euo pipefail
if ! command -v redis-server >/dev/null; then
  echo "== installing redis-server (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get install -y -q --no-install-recommends redis-server >/dev/null 2>&1 \
    || { timeout 300 apt-get update -q >/dev/null && timeout 300 apt-get install -y -q --no-install-recommends redis-server >/dev/null; }
  # The package starts a system service on port 6379; the tests run their own servers.
  (command -v service >/dev/null && service redis-server stop >/dev/null 2>&1) || true
fi
command -v redis-server
