"""Work beside the loop: catching up after an outage, waiting for the database at start-up,
and the scheduled jobs (claim heartbeats, recovery of dead owners' rows, retention)."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

from backend import tracking
from backend.daemon import claim
from backend.daemon import folders as lifecycle
from backend.daemon.runtime import Runtime
from backend.errors import DatabaseUnavailableError, IngestError
from backend.load import versions
from backend.ops.retention import prune_backups

log = structlog.get_logger(__name__)


def catch_up(rt: Runtime) -> None:
    """Close rows orphaned by a database failure and record moves the database missed."""
    with rt.lock:
        orphans = list(rt.orphans.items())
        moves = list(rt.unrecorded_moves.items())
    for tracking_id, reason in orphans:
        try:
            claim.recover_row(rt.db, tracking_id, reason, status=tracking.Status.RETRY)
        except IngestError:
            return
        with rt.lock:
            rt.orphans.pop(tracking_id, None)
    for tracking_id, (moved, values) in moves:
        try:
            tracking.record_move(rt.db, tracking_id, moved, **values)
        except IngestError:
            return
        with rt.lock:
            rt.unrecorded_moves.pop(tracking_id, None)


def wait_for_database(rt: Runtime) -> None:
    """Create the schema, retrying with backoff while the database is unreachable.

    Returns as soon as `rt.stop` is set (SIGINT/SIGTERM while waiting): the backoff sleeps on
    the stop event, so Ctrl-C does not wait out the current backoff step.
    """

    def sleep(seconds: float) -> None:
        rt.stop.wait(seconds)

    try:
        for attempt in Retrying(
            retry=retry_if_exception_type(DatabaseUnavailableError),
            wait=wait_exponential_jitter(initial=1, max=30),
            stop=lambda state: rt.stop.is_set(),
            sleep=sleep,
            reraise=True,
        ):
            with attempt:
                try:
                    rt.db.init_db()
                    rt.outage.recovered()
                except DatabaseUnavailableError as exc:
                    rt.outage.failed(exc)
                    log.warning("database unavailable at start-up; retrying", error=str(exc))
                    raise
    except DatabaseUnavailableError:
        if not rt.stop.is_set():
            raise


def start_housekeeping(rt: Runtime) -> Any:
    """The scheduler: claim heartbeats, recovery of dead owners' rows, retention (hourly)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    # APScheduler 3 skips runs silently with its defaults (misfire grace 1 s): be explicit.
    job = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
    scheduler = BackgroundScheduler(daemon=True, job_defaults=job)
    lease = rt.settings.lease_seconds

    def heartbeat() -> None:
        with contextlib.suppress(IngestError):
            tracking.renew(rt.db, rt.in_flight_ids())

    def recover() -> None:
        with contextlib.suppress(IngestError):
            claim.recover_stale(rt.db)
            claim.reconcile_moves(rt.db)
            versions.drop_orphans(rt.db)

    def retention() -> None:
        settings = rt.settings
        if settings.processed_retention_days:
            removed = lifecycle.purge_processed(
                settings.dropoff_base_path, settings.processed_retention_days, time.time()
            )
            if removed:
                log.info("deleted old processed files", count=removed)
        if settings.keep_versions:
            with contextlib.suppress(IngestError):
                prune_backups(rt.db, settings.keep_versions)

    scheduler.add_job(heartbeat, "interval", seconds=max(1.0, lease / 4), id="heartbeat")
    scheduler.add_job(recover, "interval", seconds=max(2.0, lease / 2), id="recover")
    scheduler.add_job(retention, "interval", seconds=3600, id="retention", next_run_time=None)
    scheduler.start()
    scheduler.get_job("retention").modify(next_run_time=datetime.now(UTC) + timedelta(seconds=5))
    return scheduler
