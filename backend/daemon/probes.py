"""What the health server answers: liveness, readiness, the status snapshot and the status page."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from backend import tracking
from backend.daemon.health import HealthServer, start_health_server
from backend.daemon.page import render_page
from backend.daemon.runtime import Runtime
from backend.errors import ConfigError, IngestError
from backend.ops.overview import loads_per_hour, table_freshness
from backend.ops.status import db_status

log = structlog.get_logger(__name__)

#: A scrape reuses the last database ping for this long (Prometheus may scrape every few seconds).
DATABASE_PING_CACHE_SECONDS = 5.0


def liveness(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    """Whether the loop beat recently enough (no dependency checks: an outage must not restart us)."""
    age = time.monotonic() - rt.heartbeat
    limit = max(30.0, 4 * rt.settings.monitor_interval)
    return age < limit, {"heartbeat_age_seconds": round(age, 3), "limit_seconds": limit}


def readiness(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    """Whether the daemon can do its work now: database (writes too after a failure), folders, disk."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        rt.db.ping()
        checks["database"] = {"status": "pass"}
        if not rt.outage.ok:
            # Answering SELECT 1 is not enough after a failed load: a read-only database or
            # revoked rights refuse every write while the ping passes.
            tracking.probe_write(rt.db)
            checks["database"] = {
                "status": "warn",
                "output": f"the last load failed on the database and is retried: {rt.outage.error}",
            }
    except IngestError as exc:
        checks["database"] = {"status": "fail", "output": str(exc)}
    base = rt.settings.dropoff_base_path
    ok_dirs = base.is_dir() and os.access(base, os.R_OK | os.W_OK | os.X_OK)
    checks["dropoff"] = {
        "status": "pass" if ok_dirs else "fail",
        "output": "" if ok_dirs else f"{base} is missing or not readable and writable",
    }
    try:
        # The data folder holds the SQLite files and rejected rows: it fills up too.
        watched = [p for p in (base, rt.settings.data_dir) if p.exists()] or [Path(".")]
        free_mb = min(shutil.disk_usage(p).free for p in watched) / (1024 * 1024)
        ok_disk = free_mb >= rt.settings.min_free_disk_mb
        checks["disk"] = {
            "status": "pass" if ok_disk else "fail",
            "observedValue": round(free_mb),
            "observedUnit": "MiB",
            "output": "" if ok_disk else "free disk below MIN_FREE_DISK_MB",
        }
    except OSError as exc:
        checks["disk"] = {"status": "fail", "output": str(exc)}
    checks["watcher"] = {
        "status": "pass" if rt.watcher_alive else "warn",
        "output": "" if rt.watcher_alive else "filesystem events unavailable; rescans only",
    }
    ok = all(c["status"] != "fail" for c in checks.values())
    return ok, {"status": "pass" if ok else "fail", "checks": checks}


def status_snapshot(rt: Runtime) -> dict[str, Any]:
    """What /status and `status` show: waiting files, recent outcomes, the database's view."""

    recent = rt.recent_outcomes()
    waiting = [
        {"file": str(p), "checks_done": done, "checks_needed": need} for p, done, need in rt.tracker.waiting()
    ]
    snapshot: dict[str, Any] = {
        "daemon": tracking.OWNER,
        "waiting_for_stability": waiting,
        "held_by_configuration": rt.held_tables(),
        "recent": recent,
    }
    try:
        snapshot.update(db_status(rt.db))
    except IngestError as exc:
        snapshot["database_error"] = str(exc)
    return snapshot


def page_snapshot(rt: Runtime) -> dict[str, Any]:
    """What the status page shows: the /status snapshot plus per-table freshness and loads per hour."""
    data = status_snapshot(rt)
    base = rt.settings.dropoff_base_path
    for item in data.get("waiting_for_stability", []):
        with contextlib.suppress(ValueError):
            item["file"] = str(Path(item["file"]).relative_to(base))
    data["dropoff"] = str(base)
    data["database"] = {"up": "database_error" not in data, "error": data.get("database_error")}
    if "database_error" not in data:
        try:
            data["tables"] = table_freshness(rt.db)
            data["loads_per_hour"] = loads_per_hour(rt.db)
        except IngestError as exc:
            data["database"] = {"up": False, "error": str(exc)}
    return data


def database_up(rt: Runtime, cache_seconds: float = DATABASE_PING_CACHE_SECONDS) -> Callable[[], bool]:
    """A callable for `refdata_database_up`: pings the database, at most once per `cache_seconds`."""
    lock = threading.Lock()
    last = {"at": -cache_seconds, "up": False}

    def is_up() -> bool:
        with lock:
            now = time.monotonic()
            if now - last["at"] >= cache_seconds:
                try:
                    rt.db.ping()
                    last["up"] = True
                except IngestError:
                    last["up"] = False
                last["at"] = now
            return bool(last["up"])

    return is_up


def seed_table_metrics(rt: Runtime) -> None:
    """Per-table freshness from the tracking table, so it survives a restart of the daemon.

    Without this, an alert on "table X not refreshed for 25 h" would see no series at all after
    a restart until X's next load.
    """
    try:
        tables = table_freshness(rt.db, limit=10_000)
    except IngestError as exc:
        log.warning("could not read the tables' last loads for the metrics", error=str(exc))
        return
    for item in tables:
        if item["finished_at_epoch"] is not None:
            rt.metrics.table_loaded(item["table"], item["finished_at_epoch"], item["rows_loaded"])


def start_health(rt: Runtime) -> HealthServer:
    """Start the health server for `rt`, or raise ConfigError in one line when it cannot listen.

    Raises:
        ConfigError: the address is taken (another instance running?) or cannot be bound.
    """
    settings = rt.settings
    token = settings.health_token.get_secret_value() if settings.health_token else None
    rt.metrics.watch_database(database_up(rt))
    seed_table_metrics(rt)
    where = f"{settings.health_host}:{settings.health_port}"
    try:
        return start_health_server(
            settings.health_host,
            settings.health_port,
            token=token,
            liveness=lambda: liveness(rt),
            readiness=lambda: readiness(rt),
            status=lambda: status_snapshot(rt),
            metrics=rt.metrics.render,
            page=lambda: render_page(page_snapshot(rt)),
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"health port {where} is already in use (another refdata-monitor running?); "
                "stop it, or set HEALTH_PORT to a free port (0: any) or HEALTH_ENABLED=false"
            ) from None
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot listen on {where} (HEALTH_HOST/HEALTH_PORT): {reason}") from None
