"""The daemon's burst of small files alone (check 3 of `bench/daemon.py`), repeated, optionally profiled.

    python -m bench.burst --databases sqlite,postgresql --rounds 3 [--py-spy bench/out/burst]

Each round starts a new daemon (MONITOR_INTERVAL=1, STABILITY_CHECKS=3, WORKERS=2) on a new
database (SQLite in the round's folder; on PostgreSQL a new database on the throwaway server of
`bench/runner.py`, or on --database-url's server), drops the 1,000 files of 10 rows and reports
the seconds until all are settled; the median of the rounds is printed last. With --py-spy, py-spy
samples the daemon (every thread, idle ones too) during each burst and writes its collapsed
stacks to DIR/<db>-<round>.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.daemon import bench_daemon
from bench.product import product_python
from bench.runner import _pg_exec, _product_env, _work_root, postgres_target


class _PySpy:
    """py-spy recording one process until stopped (SIGINT makes it write its output)."""

    def __init__(self, pid: int, out: Path) -> None:
        spy = Path(sys.executable).with_name("py-spy")
        command = [str(spy if spy.exists() else "py-spy"), "record", "--idle", "--threads"]
        command += ["--format", "raw", "--rate", "200", "-o", str(out), "-p", str(pid)]
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the files arrive

    def terminate(self) -> None:
        self._proc.send_signal(signal.SIGINT)

    def wait(self) -> None:
        self._proc.wait(timeout=60)


def _round(db: str, number: int, workdir: Path, url: str | None, spy_dir: Path | None) -> dict[str, Any]:
    def around(pid: int) -> _PySpy | None:
        if spy_dir is None:
            return None
        spy_dir.mkdir(parents=True, exist_ok=True)
        return _PySpy(pid, spy_dir / f"{db}-{number}.txt")

    result = bench_daemon(
        product_python(), _product_env(workdir), workdir, url, checks=("burst",), around_burst=around
    )
    check = result["checks"][0] if result.get("checks") else {}
    return {"db": db, "round": number, "seconds": check.get("value"), "result": check.get("result")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__.splitlines()[0])
    p.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql (comma separated)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--database-url", default=None, help="PostgreSQL server instead of a throwaway one")
    p.add_argument("--py-spy", type=Path, default=None, metavar="DIR", help="profile each burst into DIR")
    args = p.parse_args(argv)
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    root = Path(tempfile.mkdtemp(prefix="burst-", dir=_work_root()))
    results: list[dict[str, Any]] = []
    try:
        # Rounds interleaved across databases, so that a noisy spell of the machine hits both.
        pg = postgres_target(args.database_url) if "postgresql" in databases else contextlib.nullcontext()
        with pg as target:
            for number in range(1, args.rounds + 1):
                for db in databases:
                    workdir = root / f"{db}-{number}"
                    url = None
                    if db == "postgresql":
                        if target is None:
                            continue
                        name = f"bench_burst_{number}"
                        _pg_exec(target, "postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                                 f'CREATE DATABASE "{name}" TEMPLATE template0')  # fmt: skip
                        url = target.url(name)
                    outcome = _round(db, number, workdir, url, args.py_spy)
                    print(json.dumps(outcome), flush=True)
                    results.append(outcome)
                    shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for db in databases:
        times = [r["seconds"] for r in results if r["db"] == db and r["seconds"] is not None]
        shown = ", ".join(f"{t:.1f}" for t in times)
        median = f"{statistics.median(times):.1f} s" if times else "none finished"
        print(f"{db}: median {median} (rounds {shown})", flush=True)
    return 0 if all(r["seconds"] is not None for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
