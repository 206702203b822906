"""Daemon checks of the benchmark: idle cost, pick-up latency and a burst of small files.

One ``python -m backend run`` process (on SQLite in a temp folder, or on the PostgreSQL database
the runner passes), with MONITOR_INTERVAL=1, STABILITY_CHECKS=3 and WORKERS=2:

1. at rest, with 10,000 files already in the processed/ folders: CPU time of the daemon over
   30 s, as a share of one core (target < 1 %);
2. a 1 MB file written into reference_data_table/fullload/ (64 KiB writes): seconds from the
   close of the file to the moment it lands in processed/, which the daemon does only after the
   load committed (target <= 5 s; three rounds, different content each, median);
3. 1,000 files of 10 rows each (one table, ``small``) renamed into
   none_reference_data_table/append/ at once: seconds until all are in processed/ and the table
   holds the 10,000 rows (target <= 60 s; the wait stops at BURST_TIMEOUT_SECONDS and reports
   how many were done by then).

`bench_daemon(..., checks=("burst",))` runs only some of them (`bench/burst.py` does, for the
burst alone, repeated, optionally under py-spy).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench.generate import Spec, generate, iter_lines

IDLE_FILES = 10_000
IDLE_SECONDS = 30.0
SETTLE_SECONDS = 5.0
LATENCY_ROUNDS = 3
SMALL_FILES = 1_000
SMALL_ROWS = 10
BURST_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
FOLDERS = [
    Path(kind, mode)
    for kind in ("reference_data_table", "none_reference_data_table")
    for mode in ("fullload", "append")
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode} before it was healthy")
        url = f"http://127.0.0.1:{port}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("daemon not healthy within 60 s")


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def _wait_for(predicate: Any, timeout_seconds: float, poll_seconds: float = 0.02) -> float | None:
    """Monotonic time at which `predicate()` first held, or None on timeout."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(poll_seconds)
    return None


def count_rows(url: str, table: str) -> int | None:
    """Rows of ref.<table> (None when the database does not answer within a few seconds)."""
    import sqlalchemy as sa

    from bench.runner import sqlite_schema_file

    try:
        if url.startswith("sqlite"):
            ref_db = sqlite_schema_file(url, "ref")
            if not ref_db.exists():
                return 0
            with contextlib.closing(sqlite3.connect(ref_db, timeout=5)) as conn:
                return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # noqa: S608
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text(f'SELECT count(*) FROM ref."{table}"')).scalar_one())  # noqa: S608
        finally:
            engine.dispose()
    except (sqlite3.Error, sa.exc.SQLAlchemyError):
        return None


def _populate_processed(drop: Path) -> None:
    body = "id,name\n1,old\n"
    for i in range(IDLE_FILES):
        folder = drop / FOLDERS[i % len(FOLDERS)] / "processed"
        (folder / f"20240101_000000_old_{i:05d}.csv").write_text(body)


CHECKS = ("idle", "latency", "burst")


def bench_daemon(
    python: str,
    env: dict[str, str],
    workdir: Path,
    database_url: str | None = None,
    *,
    checks: Sequence[str] = CHECKS,
    around_burst: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Run the checks; returns their results (also when one fails, with the reason).

    Args:
        database_url: where the daemon loads (default: a new SQLite database under `workdir`);
            it must not hold tables named latency or small yet.
        checks: which of CHECKS to run, in their order.
        around_burst: called with the daemon's pid just before the burst's files are dropped;
            what it returns is stopped (`.terminate()`, `.wait()`) once they are all settled
            (a profiler attached for the burst alone).
    """
    drop = workdir / "dropoff"
    for folder in FOLDERS:
        for sub in ("processed", "error"):
            (drop / folder / sub).mkdir(parents=True, exist_ok=True)
    _populate_processed(drop)
    db_dir = workdir / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{db_dir / 'refdata.db'}"
    port = _free_port()
    daemon_env = {
        **env,
        "DATABASE_URL": url,
        "DROPOFF_BASE_PATH": str(drop),
        "DATA_DIR": str(workdir / "data"),
        "MONITOR_INTERVAL": "1",
        "STABILITY_CHECKS": "3",
        "WORKERS": "2",
        "HEALTH_ENABLED": "true",
        "HEALTH_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    result: dict[str, Any] = {
        "database": url.split(":", 1)[0].split("+", 1)[0],
        "settings": {k: daemon_env[k] for k in ("MONITOR_INTERVAL", "STABILITY_CHECKS", "WORKERS")},
        "checks": [],
    }
    print(f"daemon: starting on {result['database']}", flush=True)
    with (workdir / "daemon.log").open("wb") as log_file:
        proc = subprocess.Popen(
            [python, "-m", "backend", "--env-file", os.devnull, "run"],
            env=daemon_env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(port, proc)
            ps = psutil.Process(proc.pid)
            time.sleep(SETTLE_SECONDS)
            if "idle" in checks:
                result["checks"].append(_idle_check(ps))
            if "latency" in checks:
                result["checks"].append(_latency_check(drop, workdir))
            if "burst" in checks:
                result["checks"].append(_burst_check(drop, workdir, url, around_burst, proc.pid))
            memory = ps.memory_full_info()
            result["daemon_rss_mb"] = round(memory.rss / 2**20, 1)
        except (RuntimeError, OSError, psutil.Error) as exc:
            result["error"] = f"{exc.__class__.__name__}: {exc}"
            print(f"daemon: FAILED {result['error']}", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                result["stop"] = f"did not stop within {STOP_TIMEOUT_SECONDS:.0f} s of SIGTERM; killed"
                proc.kill()
                proc.wait()
    log_lines = (workdir / "daemon.log").read_text(errors="replace").strip().splitlines()
    warnings = [line for line in log_lines if "[warning" in line or "[error" in line]
    result["log_warnings"] = len(warnings)
    result["log_sample"] = warnings[:5] + warnings[-5:] if len(warnings) > 10 else warnings
    for check in result["checks"]:
        print(f"daemon: {check['name']}: {check['result']} (target {check['target']})", flush=True)
    return result


def _idle_check(ps: psutil.Process) -> dict[str, Any]:
    before = _cpu_seconds(ps)
    started = time.monotonic()
    time.sleep(IDLE_SECONDS)
    share = 100.0 * (_cpu_seconds(ps) - before) / (time.monotonic() - started)
    return {
        "name": f"at rest, {IDLE_FILES:,} files in processed/, MONITOR_INTERVAL=1",
        "value": round(share, 2),
        "result": f"{share:.2f} % of one core over {IDLE_SECONDS:.0f} s",
        "target": "< 1 %",
        "met": share < 1.0,
    }


def _latency_check(drop: Path, workdir: Path) -> dict[str, Any]:
    folder = drop / "reference_data_table" / "fullload"
    latencies: list[float] = []
    failures: list[str] = []
    for i in range(LATENCY_ROUNDS):
        source = generate(Spec(size_bytes=10**6, seed=100 + i), workdir / "gen").path
        target = folder / f"latency_2024010{i + 1}.csv"
        data = source.read_bytes()
        with target.open("wb") as out:
            for offset in range(0, len(data), 64 * 1024):
                out.write(data[offset : offset + 64 * 1024])
                out.flush()
        last_write = time.monotonic()
        done = _wait_for(lambda target=target: not target.exists(), 60.0)
        if done is None:
            failures.append(f"{target.name} not picked up within 60 s")
            continue
        if any((folder / "error").iterdir()):
            failures.append(f"{target.name} went to error/")
            continue
        latencies.append(done - last_write)
    median = statistics.median(latencies) if latencies else None
    return {
        "name": "1 MB file, MONITOR_INTERVAL=1, STABILITY_CHECKS=3: last write -> in processed/ (committed)",
        "value": None if median is None else round(median, 2),
        "rounds": [round(x, 2) for x in latencies],
        "result": (
            "failed: " + "; ".join(failures)
            if median is None
            else f"median {median:.2f} s (rounds {', '.join(f'{x:.2f}' for x in latencies)})"
        ),
        "target": "<= 5 s",
        "met": median is not None and median <= 5.0 and not failures,
    }


def _burst_check(
    drop: Path, workdir: Path, url: str, around: Callable[[int], Any] | None = None, pid: int = 0
) -> dict[str, Any]:
    folder = drop / "none_reference_data_table" / "append"
    staging = workdir / "burst"
    staging.mkdir()
    lines = iter_lines(Spec(size_bytes=0, seed=7))
    header = next(lines)
    first = date(2000, 1, 1)
    names = []
    for i in range(SMALL_FILES):
        name = f"small_{(first + timedelta(days=i)).strftime('%Y%m%d')}.csv"
        (staging / name).write_text(
            header + "".join(next(lines) for _ in range(SMALL_ROWS)), encoding="utf-8"
        )
        names.append(name)
    watcher = around(pid) if around is not None else None
    started = time.monotonic()
    for name in names:
        os.rename(staging / name, folder / name)
    dropped = time.monotonic()

    def finished() -> int:
        # Counted in the final folders only: a file being loaded may already have left the drop
        # folder (claimed), while its rows are not committed yet.
        moved = sum(1 for p in (folder / "processed").iterdir() if "small_" in p.name)
        failed = sum(
            1 for p in (folder / "error").iterdir() if p.name.startswith("small_") and p.suffix == ".csv"
        )
        return moved + failed

    done = _wait_for(lambda: finished() >= SMALL_FILES, BURST_TIMEOUT_SECONDS, poll_seconds=0.1)
    if watcher is not None:
        watcher.terminate()
        watcher.wait()
    in_error = sum(
        1 for p in (folder / "error").iterdir() if p.name.startswith("small_") and p.suffix == ".csv"
    )
    processed = sum(1 for p in (folder / "processed").iterdir() if "small_" in p.name)
    rows = count_rows(url, "small")
    shown = "rows unknown (database busy)" if rows is None else f"{rows:,} rows"
    elapsed = None if done is None else done - started
    ok = done is not None and in_error == 0 and rows == SMALL_FILES * SMALL_ROWS
    result = (
        f"{elapsed:.1f} s for {SMALL_FILES} files ({shown}, {in_error} in error/)"
        if elapsed is not None
        else f"not done within {BURST_TIMEOUT_SECONDS:.0f} s: {processed} of {SMALL_FILES} files in "
        f"processed/, {in_error} in error/ ({shown})"
    )
    return {
        "name": f"{SMALL_FILES:,} files of {SMALL_ROWS} rows dropped at once, WORKERS=2",
        "value": None if elapsed is None else round(elapsed, 1),
        "drop_seconds": round(dropped - started, 3),
        "files_processed": processed,
        "files_in_error": in_error,
        "result": result,
        "target": "<= 60 s",
        "met": ok and elapsed is not None and elapsed <= 60.0,
    }
