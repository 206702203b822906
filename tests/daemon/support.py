"""Run the real daemon (`python -m backend run`) as a subprocess on a temporary dropoff."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {
    ("ref", "fullload"): "reference_data_table/fullload",
    ("ref", "append"): "reference_data_table/append",
    ("noref", "fullload"): "none_reference_data_table/fullload",
    ("noref", "append"): "none_reference_data_table/append",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Daemon:
    """One daemon process with its own environment; several may share a dropoff and database."""

    root: Path
    url: str
    env_overrides: dict[str, str] = field(default_factory=dict)
    name: str = "d1"
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def dropoff(self) -> Path:
        return self.root / "dropoff"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    def folder(self, kind: str = "ref", mode: str = "fullload") -> Path:
        return self.dropoff / FOLDERS[(kind, mode)]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "db_"))}
        self.port = self.port or free_port()
        env.update(
            {
                "DATABASE_URL": self.url,
                "DROPOFF_BASE_PATH": str(self.dropoff),
                "DATA_DIR": str(self.root / "data"),
                "MONITOR_INTERVAL": "0.2",
                "STABILITY_CHECKS": "2",
                "HEALTH_PORT": str(self.port),
                "LOG_FORMAT": "json",
                "LEASE_SECONDS": "5",
                "SHUTDOWN_TIMEOUT_SECONDS": "10",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("REFDATA_FAULTS", None)
        env.update(self.env_overrides)
        return env

    def start(self) -> Daemon:
        # What `init-db` would have made: the daemon refuses to start without its folders.
        self.dropoff.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backend", "--env-file", "/nonexistent/.env", "run"],
            cwd=REPO,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        wait_for(lambda: self.get("/healthz")[0] == 200, timeout, what=f"{self.name} /healthz")

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback http only
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def get_json(self, path: str, token: str | None = None) -> tuple[int, Any]:
        code, body = self.get(path, token)
        return code, (json.loads(body) if body else None)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def files_in(folder: Path, sub: str) -> list[Path]:
    target = folder / sub
    return sorted(p for p in target.iterdir() if p.is_file()) if target.is_dir() else []


def data_files(folder: Path, sub: str) -> list[Path]:
    """Files in processed/ or error/ that are data, not sidecars or markers."""
    # Hidden names are temp files of an atomic write in progress (e.g. a sidecar being written).
    return [
        p
        for p in files_in(folder, sub)
        if not p.name.endswith((".error.json", ".rejects.csv", ".done", ".ok")) and not p.name.startswith(".")
    ]


def drop(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write a file atomically-ish: to a hidden temp name, then rename into the drop folder."""
    tmp = path.with_name("." + path.name + ".part")
    tmp.write_bytes(text.encode(encoding))
    os.replace(tmp, path)
    return path


def engine_for(url: str, root: Path) -> sa.Engine:
    """An engine that sees the daemon's database (SQLite schemas attached like the daemon does)."""
    from backend.db import open_database
    from tests.support import make_settings

    return open_database(make_settings(root, url)).engine


def query(url: str, root: Path, sql: str) -> list[Any]:
    engine = engine_for(url, root)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()
