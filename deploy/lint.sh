#!/usr/bin/env bash
# yamllint on the Kubernetes manifests (installed into target/deploy-lint with pip, pinned).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/deploy-lint"
[ -x "$venv/bin/yamllint" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check yamllint==1.38.0; }
"$venv/bin/yamllint" -d '{extends: default, rules: {line-length: {max: 120}, comments: {min-spaces-from-content: 1}}}' \
  "$root/deploy/k8s"
echo "yamllint: deploy/k8s clean"
