#!/usr/bin/env bash
# Installs the peers of the load benchmark (bench/peers.py) into their own venv, bench/.venv-peers,
# so none of them becomes a dependency of the product. Idempotent: a venv whose recorded
# requirements match the files here is left alone (--force rebuilds it).
#
# Everything comes from the registries this machine reaches: PyPI through pip's configured index
# (ingestr 0.15.9 and sling-linux-amd64 1.4.11 ship their binaries inside the wheel; DuckDB's
# extensions come as wheels too, loaded by path, because DuckDB's own INSTALL downloads them) and
# Debian's pgloader and GNU time through apt.
#
# Usage: bench/setup_peers.sh [--force] [--no-apt]
#   PEERS_PYTHON  interpreter for the venv (default python3.11, else python3)
#   PEERS_VENV    where the venv goes (default bench/.venv-peers)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

force=0
apt=1
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --no-apt) apt=0 ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "setup_peers.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

venv=${PEERS_VENV:-.venv-peers}
python=${PEERS_PYTHON:-$(command -v python3.11 || command -v python3)}

# --- Debian packages: pgloader (a PostgreSQL-only peer) and GNU time (peak RSS of every case).
if [ "$apt" = 1 ]; then
  missing=()
  command -v pgloader > /dev/null || missing+=(pgloader)
  [ -x /usr/bin/time ] || missing+=(time)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      # The package lists may be stale or empty on a fresh machine; update once before installing.
      apt-get update -q
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    else
      echo "setup_peers.sh: not root; install ${missing[*]} with apt-get (those peers are skipped)" >&2
    fi
  fi
fi

# --- The Python peers, pinned: requirements-peers.txt names them, constraints-peers.txt pins
# every package of the venv, transitive ones included.
stamp="$venv/.requirements.sha256"
wanted=$(cat requirements-peers.txt constraints-peers.txt | sha256sum | cut -d' ' -f1)
if [ "$force" = 0 ] && [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2> /dev/null)" = "$wanted" ]; then
  echo "setup_peers.sh: $venv is up to date"
  exit 0
fi
if [ "$force" = 1 ] || [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r requirements-peers.txt -c constraints-peers.txt
"$venv/bin/python" -m pip check
# Fail here, not in the middle of a benchmark, when a wheel lacks what the benchmark relies on.
"$venv/bin/python" - << 'EOF'
import pathlib

import duckdb
import duckdb_extension_postgres_scanner
import duckdb_extension_sqlite_scanner
import sling_linux_amd64

for module, name in ((duckdb_extension_sqlite_scanner, "sqlite_scanner"),
                     (duckdb_extension_postgres_scanner, "postgres_scanner")):
    path = pathlib.Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    assert path.is_file(), f"{path} missing: the extension wheel does not match duckdb {duckdb.__version__}"
assert pathlib.Path(sling_linux_amd64.SLING_BIN).is_file(), "sling binary missing from its wheel"
EOF
[ -x "$venv/bin/ingestr" ] || { echo "setup_peers.sh: $venv/bin/ingestr missing" >&2; exit 1; }
echo "$wanted" > "$stamp"
echo "setup_peers.sh: installed into $venv"
