#!/usr/bin/env bash
# Set-up steps behind the Makefile, kept here so each can check before it acts and stay idempotent:
#   python-env       .venv exists, has pip, and holds the pinned runtime requirements.txt (what the
#                    daemon imports: `make run`, `make setup`)
#   dev-env          the same plus requirements-dev.txt (tests, lint, types, benchmarks: `make test`)
#   system-packages  PostgreSQL server binaries (the test suite starts its own server) and the
#                    unixODBC library pyodbc links against; installed with apt-get only when missing
#                    and we are root, otherwise a hint is printed and the tests report what is absent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
# Hash of the requirement files the venv was last installed from, one stamp per kind; a change (not
# just a newer mtime, which every git checkout produces) triggers a reinstall.
STAMP_DIR=$VENV

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

can_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        apt-get update
        apt_updated=1
    fi
    # CI runs without a terminal or stdin: never let debconf ask anything.
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" </dev/null
}

venv_ok() {
    [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null &&
        "$VENV/bin/python" -m pip --version >/dev/null 2>&1
}

ensure_venv() {
    venv_ok && return 0
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install Python >= 3.11 or run make PYTHON=/path/to/python3.11"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PYTHON is $("$PYTHON" -V 2>&1); this project needs Python >= 3.11 (make PYTHON=...)"
    # A venv without a working pip (interrupted creation, Python upgraded underneath) is rebuilt.
    if [ -e "$VENV" ]; then
        say "rebuilding broken $VENV"
        rm -rf "$VENV"
    fi
    say "creating $VENV with $("$PYTHON" -V 2>&1)"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        # Debian's system Python ships venv/ensurepip in a separate package.
        can_apt || die "'$PYTHON -m venv' failed; on Debian/Ubuntu install python3-venv"
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
}

ensure_requirements() {
    # $1: requirements.txt (runtime) or requirements-dev.txt (which includes it)
    local file=$1 want have stamp
    stamp=$STAMP_DIR/.${file%.txt}.sha256
    want=$(cat requirements.txt "$file" | sha256sum | cut -d' ' -f1)
    have=$(cat "$stamp" 2>/dev/null || true)
    [ "$want" = "$have" ] && return 0
    say "installing $file into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$file"
    # Written only after pip succeeded, so a failed install is retried next time.
    echo "$want" >"$stamp"
}

have_pg_server_binaries() {
    local bindir
    if command -v pg_config >/dev/null 2>&1 && bindir=$(pg_config --bindir 2>/dev/null) &&
        [ -x "$bindir/initdb" ]; then
        return 0
    fi
    # pg_config may come from libpq-dev alone, which has no server; look for an installed server.
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

ensure_postgres() {
    if [ -n "${TEST_POSTGRES_URL:-}" ]; then
        return 0 # the tests use that server instead of starting their own
    fi
    if ! have_pg_server_binaries; then
        if can_apt; then
            say "PostgreSQL server binaries not found; installing the postgresql package"
            apt_install postgresql
        else
            say "PostgreSQL server binaries not found (initdb); install them (apt-get install postgresql)" \
                "or set TEST_POSTGRES_URL; tests marked postgres will be skipped"
            return 0
        fi
    fi
    # The server refuses to run as root, so root runs it as 'postgres' (the Debian package creates
    # that user; binaries from elsewhere may not).
    if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
        say "creating system user 'postgres' to run the test server as"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

ensure_odbc() {
    # pyodbc (pinned in requirements.txt) cannot even be imported without libodbc.so.2.
    ldconfig -p 2>/dev/null | grep -q 'libodbc\.so\.2' && return 0
    if can_apt; then
        say "libodbc.so.2 not found; installing libodbc2 (unixODBC) for pyodbc"
        apt_install libodbc2
    else
        say "libodbc.so.2 not found; install unixODBC (apt-get install libodbc2) to import pyodbc"
    fi
}

case "${1:-}" in
python-env)
    ensure_venv
    ensure_requirements requirements.txt
    ;;
dev-env)
    ensure_venv
    ensure_requirements requirements-dev.txt
    ;;
system-packages)
    ensure_postgres
    ensure_odbc
    ;;
*)
    die "usage: $0 python-env|dev-env|system-packages"
    ;;
esac
