#!/usr/bin/env bash
# Creates bench/.venv-runtime: the product's runtime requirements only (requirements.txt), the
# interpreter the benchmarks run ours with (bench/product.py says why). Idempotent; --force rebuilds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
venv=.venv-runtime
python=${RUNTIME_PYTHON:-$(command -v python3.11 || command -v python3)}
if [ "${1:-}" = "--force" ]; then rm -rf "$venv"; fi
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s ../requirements.txt "$stamp"; then
  echo "bench/.venv-runtime is up to date"
  exit 0
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r ../requirements.txt
cp ../requirements.txt "$stamp"
echo "bench/.venv-runtime ready"
