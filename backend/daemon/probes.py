"""What the health server answers: liveness, readiness and the status snapshot."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from backend import tracking
from backend.daemon.health import HealthServer, start_health_server
from backend.daemon.runtime import Runtime
from backend.errors import IngestError
from backend.ops.status import db_status


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
    snapshot: dict[str, Any] = {"daemon": tracking.OWNER, "waiting_for_stability": waiting, "recent": recent}
    try:
        snapshot.update(db_status(rt.db))
    except IngestError as exc:
        snapshot["database_error"] = str(exc)
    return snapshot


def start_health(rt: Runtime) -> HealthServer:
    token = rt.settings.health_token.get_secret_value() if rt.settings.health_token else None
    return start_health_server(
        rt.settings.health_host,
        rt.settings.health_port,
        token=token,
        liveness=lambda: liveness(rt),
        readiness=lambda: readiness(rt),
        status=lambda: status_snapshot(rt),
        metrics=rt.metrics.render,
    )
