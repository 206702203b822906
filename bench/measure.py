"""Run one command as a subprocess and measure it: wall clock, CPU time and peak RSS.

Peak RSS comes from ``/usr/bin/time`` (GNU time, "Maximum resident set size") wrapped around
the command. Reading the rusage of our own child with ``os.wait4`` is not enough: the child is
forked from this (large) Python process, and Linux carries the RSS of that forked copy into the
child's maximum, so a 5 MB psql would show as 60 MB. Without GNU time, the RSS of the process is
polled with psutil every 20 ms instead (short spikes can be missed; results.json says which
method was used). The numbers cover the measured process itself (psql, sqlite3 or python), not
the database server it talks to.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

GNU_TIME = "/usr/bin/time"
POLL_SECONDS = 0.02


def rss_method() -> str:
    """How peak RSS is measured on this machine."""
    return "gnu-time" if os.access(GNU_TIME, os.X_OK) else "psutil-polling"


@dataclass(frozen=True, slots=True)
class Run:
    """One measured process."""

    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


class CommandError(RuntimeError):
    """A measured command exited non-zero."""


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout_seconds: float = 3600,
) -> Run:
    """Run `command` to completion and return its wall time, CPU time and peak RSS.

    Raises:
        CommandError: it exited non-zero and `check` is set (the message carries its stderr tail).
    """
    use_time = rss_method() == "gnu-time"
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        full = [GNU_TIME, "-f", "%M %U %S", "-o", stats.name, *command] if use_time else list(command)
        started = time.perf_counter()
        proc = subprocess.Popen(
            full,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        poller = None if use_time else _RssPoller(proc.pid)
        try:
            stdout, stderr = proc.communicate(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        seconds = time.perf_counter() - started
        if poller is not None:
            peak_kb, cpu_seconds = poller.stop()
        else:
            peak_kb, cpu_seconds = _parse_time(stats.read())
    result = Run(
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        peak_rss_mb=peak_kb / 1024.0,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
    )
    if check and result.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        raise CommandError(f"{' '.join(command[:4])} ... exited {result.returncode}:\n{tail}")
    return result


def _parse_time(text: str) -> tuple[float, float]:
    # GNU time writes "Command exited with non-zero status N" before the format line on failure.
    for line in reversed(text.strip().splitlines()):
        parts = line.split()
        if len(parts) == 3:
            try:
                return float(parts[0]), float(parts[1]) + float(parts[2])
            except ValueError:
                continue
    return 0.0, 0.0


class _RssPoller:
    """Samples a process's RSS on a thread until stopped (the fallback without GNU time)."""

    def __init__(self, pid: int) -> None:
        self.peak_kb = 0.0
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        try:
            self._proc: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self._proc = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._proc is not None and not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, self._proc.memory_info().rss / 1024.0)
                times = self._proc.cpu_times()
                self.cpu_seconds = times.user + times.system
            except psutil.Error:
                return
            self._stop.wait(POLL_SECONDS)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.peak_kb, self.cpu_seconds


def _first_line(command: Sequence[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(list(command), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (
        (out.stdout or out.stderr).strip().splitlines()[0]
        if (out.stdout or out.stderr).strip()
        else "unknown"
    )


def machine_info(python: str = sys.executable) -> dict[str, Any]:
    """Machine and software facts for the results table."""
    cpu_model = "unknown"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        if match:
            cpu_model = match.group(1).strip()
    except OSError:
        pass
    memory_gb = None
    try:
        match = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        if match:
            memory_gb = round(int(match.group(1)) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = subprocess.run(
        [
            python,
            "-c",
            "import sys, sqlite3, pandas, sqlalchemy, psycopg;"
            "print(sys.version.split()[0], sqlite3.sqlite_version, pandas.__version__,"
            " sqlalchemy.__version__, psycopg.__version__)",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    keys = ("python", "sqlite_library", "pandas", "sqlalchemy", "psycopg")
    return {
        "nproc": os.cpu_count(),
        "memory_gb": memory_gb,
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "rss_method": rss_method(),
        **dict(zip(keys, versions, strict=False)),
        "sqlite3_cli": _first_line(["sqlite3", "--version"]).split(" ")[0],
        "psql": _first_line(["psql", "--version"]),
    }
