"""The daemon: discover, wait for stability, claim, load, move; plus health and housekeeping.

One main loop (this thread) rescans the drop folders every MONITOR_INTERVAL seconds (watchdog
events only wake it early: network shares deliver none, so the rescan is the source of
truth), feeds the stability tracker, and hands ready files to a bounded worker pool. It also
pings the systemd watchdog, so a stuck loop gets the service restarted.

A file's journey in `process_file`, and why in this order:

1. hash the file and derive its table; 2. claim ``<table>:<sha256>`` in the tracking table (a
unique index lets exactly one daemon win; the content hash also recognises duplicates);
3. load: stage, then publish data + tracking row in one transaction; 4. only then move the
file to processed/ (or, for a rejected file, to error/ with a sidecar) and record where it went.

A kill -9 anywhere leaves one of: no claim (the file is simply found again); a claim in
``processing`` whose owner is dead (recovery closes it as ``interrupted`` and the file is found
again: nothing was published, because publishing and the status flip are one transaction);
a ``loaded`` row whose file was not moved yet (the next scan finds the same bytes, sees its own
earlier load, and only moves the file). So no file is lost, no table is half-published, and no
append is applied twice.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

from backend import faults, tracking
from backend.config import Settings
from backend.daemon import claim
from backend.daemon import folders as lifecycle
from backend.daemon.stability import ReadyFile, StabilityTracker
from backend.db.engine import Database, open_database
from backend.errors import (
    CancelledError,
    DatabaseUnavailableError,
    FileChangedError,
    FileRejectedError,
    IngestError,
    RetryableError,
)
from backend.load.loader import LoadHooks, load_file, rejects_file
from backend.models import LoadRequest
from backend.naming import table_name_from_file

log = structlog.get_logger(__name__)

CANCEL_SUFFIX = ".cancel"


class ShutdownError(RetryableError):
    """The daemon is stopping; the load was rolled back and the file stays for the next start."""

    stage = "shutdown"


@dataclass
class Runtime:
    """What the main loop, the workers and the health endpoints share."""

    settings: Settings
    db: Database
    stop: threading.Event
    tracker: StabilityTracker
    metrics: Any
    abort: threading.Event = field(default_factory=threading.Event)
    in_flight: dict[Path, int | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    heartbeat: float = field(default_factory=time.monotonic)
    last_scan_ok: float | None = None
    db_ok: bool = True
    db_error: str | None = None
    db_retry_at: float = 0.0
    db_failures: int = 0
    watcher_alive: bool = True
    recent: list[dict[str, Any]] = field(default_factory=list)
    #: Our `processing` rows left open because the database failed; closed when it is back.
    orphans: dict[int, str] = field(default_factory=dict)
    #: Files moved while the database could not record it: tracking id -> (new path, values).
    unrecorded_moves: dict[int, tuple[Path, dict[str, Any]]] = field(default_factory=dict)

    def remember(self, outcome: dict[str, Any]) -> None:
        with self.lock:
            self.recent.insert(0, outcome)
            del self.recent[50:]


# --------------------------------------------------------------------------- one file
def process_file(rt: Runtime, ready: ReadyFile) -> str:
    """Claim, load and move one stable file; returns the outcome. Never raises."""
    settings, db = rt.settings, rt.db
    path = ready.path
    base = settings.dropoff_base_path
    kind = lifecycle.classify(path, base)
    bound = log.bind(file=path.name)
    if kind is None:
        return "ignored"
    is_reference, load_type = kind
    folder = path.parent
    tracking_id: int | None = None
    loaded_id: int | None = None
    try:
        sha256, size, mtime = claim.hash_file(path)
        table = table_name_from_file(path, db.adapter.max_identifier_length)
        request = LoadRequest(path=path, load_type=load_type, is_reference=is_reference, sha256=sha256)
        outcome = claim.claim(db, request, table, size, mtime)
        if isinstance(outcome, claim.HeldElsewhere):
            bound.info(
                "claimed by another process", holder=outcome.holder.owner, tracking_id=outcome.holder.id
            )
            # Look again after the next stability window: if the holder dies before moving the
            # file, nobody else would ever pick it up.
            rt.tracker.forget(path)
            return "held"
        if isinstance(outcome, claim.AlreadyLoaded):
            return _already_loaded(rt, path, folder, request, table, size, outcome)
        tracking_id = outcome.tracking_id
        with rt.lock:
            rt.in_flight[path] = tracking_id
        result = load_file(
            db,
            settings,
            LoadRequest(
                path=path,
                load_type=load_type,
                is_reference=is_reference,
                sha256=sha256,
                tracking_id=tracking_id,
            ),
            LoadHooks(check_cancel=_cancel_checker(rt, path)),
        )
        # From here on the data is committed: nothing below may mark the load failed.
        loaded_id, tracking_id = tracking_id, None
        rt.metrics.record_file("loaded", rows=result.rows_loaded, seconds=result.seconds)
        rt.remember(
            {
                "tracking_id": loaded_id,
                "file": path.name,
                "status": "loaded",
                "table": result.table,
                "rows": result.rows_loaded,
            }
        )
        _db_recovered(rt)
        _move_loaded(rt, path, folder, loaded_id)
        return "loaded"
    except RetryableError as exc:
        rt.tracker.forget(path)
        if isinstance(exc, DatabaseUnavailableError):
            _db_failed(rt, exc)
        if tracking_id is not None:
            # Make sure the attempt is closed (the loader cannot while the database is away, and
            # does not when the file vanished before it was opened): an open row of ours would
            # keep the file "held" forever.
            _close_attempt(rt, tracking_id, str(exc))
        bound.warning("will retry", reason=str(exc), stage=exc.stage)
        return "retry"
    except FileRejectedError as exc:
        return _reject(rt, path, folder, exc, tracking_id, kind)
    except IngestError as exc:
        return _reject(rt, path, folder, exc, tracking_id, kind)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one file, never the daemon
        bound.exception("unexpected failure", tracking_id=tracking_id or loaded_id)
        if loaded_id is not None:
            rt.tracker.forget(path)  # committed: never send it to error/; the move is retried
            return "loaded"
        error = FileRejectedError(f"{path.name}: internal error {exc.__class__.__name__}: {exc}", stage="bug")
        if tracking_id is not None:
            with contextlib.suppress(IngestError):
                tracking.finish_failed(db, tracking_id, "error", error)
        return _reject(rt, path, folder, error, tracking_id, kind)
    finally:
        with rt.lock:
            rt.in_flight.pop(path, None)
        _remove_cancel_marker(path)


def reject_entry(rt: Runtime, path: Path, reason: str) -> str:
    """Send something that is not a regular file (symlink, FIFO, device) to error/ with its reason."""
    kind = lifecycle.classify(path, rt.settings.dropoff_base_path)
    if kind is None:
        return "ignored"
    error = FileRejectedError(f"{path.name}: {reason}; only regular files are loaded", stage="read")
    try:
        return _reject(rt, path, path.parent, error, None, kind)
    except Exception:  # never let one entry stop the daemon
        log.exception("could not reject a non-regular file", file=path.name)
        return "retry"


def _move_loaded(rt: Runtime, path: Path, folder: Path, tracking_id: int, event_name: str = "moved") -> bool:
    """Move a loaded file to processed/ and record it; on failure leave it for a later attempt.

    The load is committed, so a file that cannot be moved (folder not writable, share gone)
    stays `loaded`: the next scan finds the same bytes, recognises its own load and only
    moves it.
    """
    try:
        moved = lifecycle.move_to_processed(path, folder, time.time())
    except OSError as exc:
        rt.tracker.forget(path)
        log.error(
            "loaded, but the file could not be moved to processed/; will try again",
            file=path.name,
            tracking_id=tracking_id,
            error=exc.strerror or str(exc),
        )
        with contextlib.suppress(IngestError):
            tracking.event(rt.db, tracking_id, "move_failed", {"error": exc.strerror or str(exc)})
        return False
    _record_move_later_if_needed(rt, tracking_id, moved, event_name=event_name)
    _place_rejects(rt, path.name, moved, folder, tracking_id)
    return True


def _place_rejects(rt: Runtime, name: str, moved: Path, folder: Path, tracking_id: int) -> None:
    """Move the load's rejects file (RAGGED_ROWS=skip) next to the file's sidecar in error/, if any."""
    source = rejects_file(rt.settings, tracking_id, name)
    if not source.exists():
        return
    try:
        dest = lifecycle.place_rejects(source, moved, folder, tracking_id)
    except OSError as exc:
        # Not worth failing anything over: the rows are still in the data folder.
        log.warning(
            "could not move the rejects file to error/", file=name, rejects=str(source), error=str(exc)
        )
        return
    log.info("skipped rows are in error/", file=name, rejects=str(dest))
    with contextlib.suppress(IngestError):
        tracking.event(rt.db, tracking_id, "rejects_moved", {"path": str(dest)})


def _record_move_later_if_needed(
    rt: Runtime, tracking_id: int, moved: Path, event_name: str = "moved", **values: Any
) -> None:
    try:
        _record_move(rt.db, tracking_id, moved, event_name=event_name, **values)
    except IngestError as exc:
        # The file has moved; its row must say so once the database is back.
        log.warning(
            "could not record where the file went; will retry", tracking_id=tracking_id, error=str(exc)
        )
        with rt.lock:
            rt.unrecorded_moves[tracking_id] = (moved, values)
        if isinstance(exc, DatabaseUnavailableError):
            _db_failed(rt, exc)


def _close_attempt(rt: Runtime, tracking_id: int, reason: str) -> None:
    """Close our `processing` row of an abandoned attempt as `retry`, now or once the database is back."""
    try:
        claim.recover_row(rt.db, tracking_id, reason, status="retry")
    except IngestError:
        with rt.lock:
            rt.orphans[tracking_id] = reason


def _catch_up(rt: Runtime) -> None:
    """Close rows orphaned by a database failure and record moves the database missed."""
    with rt.lock:
        orphans = list(rt.orphans.items())
        moves = list(rt.unrecorded_moves.items())
    for tracking_id, reason in orphans:
        try:
            claim.recover_row(rt.db, tracking_id, reason, status="retry")
        except IngestError:
            return
        with rt.lock:
            rt.orphans.pop(tracking_id, None)
    for tracking_id, (moved, values) in moves:
        try:
            _record_move(rt.db, tracking_id, moved, **values)
        except IngestError:
            return
        with rt.lock:
            rt.unrecorded_moves.pop(tracking_id, None)


def _already_loaded(
    rt: Runtime,
    path: Path,
    folder: Path,
    request: LoadRequest,
    table: str,
    size: int,
    outcome: claim.AlreadyLoaded,
) -> str:
    db = rt.db
    holder = outcome.holder
    if outcome.recovered:
        # Our own earlier load committed, then the process died (or the move failed) before
        # the file reached processed/.
        if _move_loaded(rt, path, folder, holder.id, event_name="moved_after_recovery"):
            log.warning(
                "moved a file whose load had committed earlier", file=path.name, tracking_id=holder.id
            )
        return "loaded"
    if not os.path.lexists(path):
        # Another daemon loaded and moved this very file while we were hashing it.
        return "gone"
    # The row stays `processing` until the file is in processed/: a duplicate row must never
    # name a file that another daemon moved (or someone deleted) under our feet.
    duplicate_id = tracking.start(db, request, table=table, size=size, mtime=None)
    try:
        moved = lifecycle.move_to_processed(path, folder, time.time())
    except OSError as exc:
        rt.tracker.forget(path)
        why = "disappeared" if isinstance(exc, FileNotFoundError) else f"could not be moved ({exc.strerror})"
        _close_attempt(rt, duplicate_id, f"{path.name}: {why}")
        return "gone" if isinstance(exc, FileNotFoundError) else "retry"
    _record_move_later_if_needed(
        rt,
        duplicate_id,
        moved,
        status="duplicate",
        processed_at=tracking.utcnow(),
        rows_loaded=0,
        error_message=f"same content as load {holder.id} ({holder.file_name}); not loaded again",
    )
    rt.metrics.record_file("duplicate")
    rt.remember({"tracking_id": duplicate_id, "file": path.name, "status": "duplicate", "table": table})
    log.info(
        "duplicate content, not loaded again", file=path.name, tracking_id=duplicate_id, original=holder.id
    )
    return "duplicate"


def _reject(
    rt: Runtime,
    path: Path,
    folder: Path,
    exc: IngestError,
    tracking_id: int | None,
    kind: tuple[bool, Any],
) -> str:
    """Move a refused file to error/ with its sidecar and close its tracking row; returns the outcome."""
    status = "cancelled" if isinstance(exc, CancelledError) else "error"
    db = rt.db
    if tracking_id is None:
        # Refused before any claim (unreadable, not a regular file, a hard link): it still
        # gets its tracking row, and stays where it is until the database can take one.
        is_reference, load_type = kind
        request = LoadRequest(path=path, load_type=load_type, is_reference=is_reference)
        try:
            tracking_id = tracking.start(db, request, table=None, size=_size_of(path), mtime=None)
        except IngestError as db_exc:
            rt.tracker.forget(path)
            if isinstance(db_exc, DatabaseUnavailableError):
                _db_failed(rt, db_exc)
            log.warning("refused file kept until its tracking row can be written", file=path.name)
            return "retry"
    sidecar = {
        "reason": str(exc),
        "stage": exc.stage,
        "exception_type": exc.__class__.__name__,
        "rows": list(exc.rows),
        "tracking_id": tracking_id,
        "details": exc.details,
    }
    if rt.db_ok:
        sidecar["detection"] = _detection_of(db, tracking_id)
    try:
        moved = lifecycle.move_to_error(path, folder, time.time(), sidecar)
    except FileNotFoundError:
        log.warning("file vanished before it could be moved to error/", file=path.name)
        with contextlib.suppress(IngestError):
            tracking.finish_failed(
                db, tracking_id, "retry", FileChangedError(f"{exc}; then the file vanished")
            )
        return "gone"
    except OSError as os_exc:
        # error/ not writable or the share went away: not final, try again later.
        rt.tracker.forget(path)
        log.error(
            "could not move the refused file to error/; will try again",
            file=path.name,
            reason=str(exc),
            error=os_exc.strerror or str(os_exc),
        )
        with contextlib.suppress(IngestError):
            tracking.finish_failed(
                db,
                tracking_id,
                "retry",
                FileRejectedError(f"{exc}; could not be moved to error/: {os_exc.strerror or os_exc}"),
            )
        return "retry"
    _record_move_later_if_needed(
        rt,
        tracking_id,
        moved,
        status=status,
        claim_key=None,
        error_stage=exc.stage,
        error_message=str(exc)[:4000],
        processed_at=tracking.utcnow(),
    )
    _place_rejects(rt, path.name, moved, folder, tracking_id)
    rt.metrics.record_file(status)
    rt.remember({"tracking_id": tracking_id, "file": path.name, "status": status, "error": str(exc)})
    log.warning("file rejected", file=path.name, reason=str(exc), stage=exc.stage, moved_to=str(moved))
    return status


def _size_of(path: Path) -> int | None:
    try:
        return path.lstat().st_size
    except OSError:
        return None


def _detection_of(db: Database, tracking_id: int) -> Any:
    import json

    t = db.catalog.tracking
    with contextlib.suppress(IngestError), db.read() as conn:
        value = conn.execute(sa.select(t.c.detection).where(t.c.id == tracking_id)).scalar()
        return json.loads(value) if value else None
    return None


def _record_move(
    db: Database, tracking_id: int, moved: Path, event_name: str = "moved", **values: Any
) -> None:
    """Record where the file went, with any final column `values`, in one transaction."""
    t = db.catalog.tracking
    with db.write() as conn:
        conn.execute(
            sa.update(t)
            .where(t.c.id == tracking_id)
            .values(moved_to=str(moved), updated_at=tracking.utcnow(), **values)
        )
        tracking.add_event(conn, db, tracking_id, event_name, {"to": str(moved)})


def _cancel_checker(rt: Runtime, path: Path) -> Any:
    marker = path.with_name(path.name + CANCEL_SUFFIX)
    # The first look at the database comes a second into the load, not at its first batch: a
    # cancel is for a load that runs long, and a burst of small files would otherwise pay a
    # connection checkout and a query per file to find the flag unset.
    last_db_check = [time.monotonic()]

    def check(tracking_id: int) -> None:
        if rt.abort.is_set():
            raise ShutdownError(f"{path.name}: daemon stopping; rolled back, will load on next start")
        if marker.exists():
            raise CancelledError(f"{path.name}: cancelled by operator ({marker.name})", stage="cancel")
        now = time.monotonic()
        if now - last_db_check[0] >= 1.0:
            last_db_check[0] = now
            t = rt.db.catalog.tracking
            with rt.db.read() as conn:
                wanted = conn.execute(sa.select(t.c.cancel_requested).where(t.c.id == tracking_id)).scalar()
            if wanted:
                raise CancelledError(
                    f"{path.name}: cancelled by operator (cancel {tracking_id})", stage="cancel"
                )

    return check


def _remove_cancel_marker(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.with_name(path.name + CANCEL_SUFFIX).unlink()


def _db_failed(rt: Runtime, exc: BaseException) -> None:
    with rt.lock:
        rt.db_ok = False
        rt.db_error = str(exc)
        now = time.monotonic()
        if now < rt.db_retry_at:
            # Another file of the same round failed: one outage is one step of backoff, however
            # many files were in flight (else 30 waiting files would jump straight to 60 s).
            return
        rt.db_failures += 1
        # Exponential backoff before new files are dispatched: 1, 2, 4, ... 60 s.
        rt.db_retry_at = now + min(60.0, 2.0 ** min(rt.db_failures - 1, 6))


def _db_recovered(rt: Runtime) -> None:
    with rt.lock:
        rt.db_ok, rt.db_error, rt.db_failures, rt.db_retry_at = True, None, 0, 0.0


# --------------------------------------------------------------------------- health
def liveness(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    age = time.monotonic() - rt.heartbeat
    limit = max(30.0, 4 * rt.settings.monitor_interval)
    return age < limit, {"heartbeat_age_seconds": round(age, 3), "limit_seconds": limit}


def readiness(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    try:
        rt.db.ping()
        checks["database"] = {"status": "pass"}
        if not rt.db_ok:
            # Answering SELECT 1 is not enough after a failed load: a read-only database or
            # revoked rights refuse every write while the ping passes.
            _probe_write(rt.db)
            checks["database"] = {
                "status": "warn",
                "output": f"the last load failed on the database and is retried: {rt.db_error}",
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


def _probe_write(db: Database) -> None:
    """Raise unless the database accepts a write to the tracking table (one that changes no row)."""
    t = db.catalog.tracking
    with db.write() as conn:
        conn.execute(sa.update(t).where(t.c.id == -1).values(updated_at=t.c.updated_at))


def status_snapshot(rt: Runtime) -> dict[str, Any]:
    from backend.ops.status import db_status

    with rt.lock:
        recent = list(rt.recent[:20])
    waiting = [
        {"file": str(p), "checks_done": done, "checks_needed": need} for p, done, need in rt.tracker.waiting()
    ]
    snapshot: dict[str, Any] = {"daemon": tracking.OWNER, "waiting_for_stability": waiting, "recent": recent}
    try:
        snapshot.update(db_status(rt.db))
    except IngestError as exc:
        snapshot["database_error"] = str(exc)
    return snapshot


# --------------------------------------------------------------------------- main loop
def run(settings: Settings, stop: threading.Event, *, until_idle: bool = False) -> int:
    """Run the monitor until `stop` is set (or, with `until_idle`, until nothing is left to do)."""
    from backend.daemon.metrics import Metrics
    from backend.daemon.notify import Heartbeat, Notifier, watchdog_interval_seconds
    from backend.daemon.watcher import Watcher, scan

    base = settings.dropoff_base_path
    lifecycle.ensure_directories(base)
    db = open_database(settings)
    metrics = Metrics()
    rt = Runtime(
        settings=settings,
        db=db,
        stop=stop,
        tracker=StabilityTracker(
            settings.stability_checks,
            settings.min_file_age_seconds,
            min_check_interval_seconds=settings.monitor_interval * 0.9,
        ),
        metrics=metrics,
    )
    _wait_for_database(rt)
    if stop.is_set():
        return 0
    with contextlib.suppress(IngestError):
        claim.recover_stale(db)
        claim.reconcile_moves(db)
    # With FORCE_POLLING the periodic rescan is all there is: a polling observer would only
    # walk the same folders a second time.
    watcher = None if settings.force_polling else Watcher(base, settings)
    if watcher is not None:
        watcher.start()
    notify = Notifier.from_environment()
    pulse = Heartbeat(notify, watchdog_interval_seconds(), on_beat=lambda now: setattr(rt, "heartbeat", now))
    status = _StatusLine(notify)
    warned: set[Path] = set()
    health = _start_health(rt, metrics) if settings.health_enabled else None
    scheduler = _start_housekeeping(rt)
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="load")
    futures: dict[Path, Future[str]] = {}
    refused_next: dict[Path, float] = {}
    dropoff_error: str | None = None
    notify.ready(f"watching {base}")
    log.info(
        "monitor started",
        dropoff=str(base),
        database=settings.masked_url,
        workers=settings.workers,
        interval=settings.monitor_interval,
        checks=settings.stability_checks,
        health_port=health.port if health else None,
    )
    try:
        while not stop.is_set():
            faults.hit("loop.tick")
            pulse.beat()
            if watcher is not None and not watcher.alive:
                rt.watcher_alive = False
                metrics.watcher_restarts.inc()
                log.warning("filesystem watcher stopped; rescanning and restarting it")
                try:
                    lifecycle.ensure_directories(base)
                    watcher.restart()
                except (OSError, IngestError) as exc:
                    # The share may be unmounted: carry on with rescans until it returns.
                    log.warning("watcher restart failed; rescans only for now", error=str(exc))
            rt.watcher_alive = watcher is None or watcher.alive
            if watcher is not None:
                watcher.drain_hints()
            for path in [p for p, f in futures.items() if f.done()]:
                done = futures.pop(path)
                if not done.cancelled() and done.exception() is None:
                    status.count(done.result())
            refused: dict[Path, str] = {}
            try:
                candidates = scan(base, settings, warned=warned, refused=refused, tick=pulse.beat)
                rt.last_scan_ok = time.time()
                metrics.last_successful_scan.set(rt.last_scan_ok)
                if dropoff_error is not None:
                    log.warning("dropoff readable again", was=dropoff_error)
                    dropoff_error = None
            except OSError as exc:
                # Once per outage, not once per scan: an unmounted share would flood the log.
                if dropoff_error is None:
                    log.warning("dropoff not readable; will rescan", error=str(exc))
                dropoff_error = str(exc)
                candidates = []
            pending = [p for p in candidates if p not in futures]
            ready = rt.tracker.check(pending, now=time.time(), tick=pulse.beat)
            metrics.files_waiting_stability.set(len(rt.tracker.waiting()))
            if time.monotonic() >= rt.db_retry_at:
                if rt.orphans or rt.unrecorded_moves:
                    _catch_up(rt)
                for item in ready:
                    futures[item.path] = pool.submit(process_file, rt, item)
                now = time.monotonic()
                for path, reason in refused.items():
                    if path not in futures and refused_next.get(path, 0.0) <= now:
                        # Same pace as a regular file's stability window if the move keeps failing.
                        refused_next[path] = now + settings.monitor_interval * settings.stability_checks
                        futures[path] = pool.submit(reject_entry, rt, path, reason)
                for gone in refused_next.keys() - refused.keys():
                    del refused_next[gone]
            else:
                for item in ready:
                    rt.tracker.forget(item.path)
            metrics.queue_depth.set(len(futures))
            status.show(base, len(rt.tracker.waiting()), len(futures), rt.db_ok)
            if until_idle and not futures and not candidates and not refused:
                break
            _sleep(
                rt, watcher, min(settings.monitor_interval, 0.2) if futures and until_idle else None, pulse
            )
    finally:
        notify.stopping()
        log.info("stopping", in_flight=len(futures))
        _shutdown(rt, pool, futures)
        scheduler.shutdown(wait=False)
        if watcher is not None:
            watcher.stop()
        if health is not None:
            health.stop()
        db.dispose()
        log.info("stopped")
    return 0


class _StatusLine:
    """The one line ``systemctl status`` shows: what waits, what loads, what today brought."""

    #: Seconds between two STATUS= updates (they change with every file of a burst).
    EVERY_SECONDS = 2.0

    def __init__(self, notify: Any) -> None:
        self._notify = notify
        self._day = ""
        self._counts: dict[str, int] = {}
        self._shown = ""
        self._at = 0.0

    def count(self, outcome: str) -> None:
        self._roll()
        self._counts[outcome] = self._counts.get(outcome, 0) + 1

    def _roll(self) -> None:
        today = time.strftime("%Y-%m-%d", time.gmtime())
        if today != self._day:
            self._day, self._counts = today, {}

    def show(self, base: Path, waiting: int, in_flight: int, db_ok: bool) -> None:
        if not self._notify.enabled:
            return
        self._roll()  # midnight UTC starts a new day even when nothing arrives
        text = (
            f"watching {base}: {waiting} waiting, {in_flight} loading; today (UTC) "
            f"{self._counts.get('loaded', 0)} loaded, {self._counts.get('duplicate', 0)} duplicate, "
            f"{self._counts.get('error', 0)} errors" + ("" if db_ok else "; database unavailable, retrying")
        )
        now = time.monotonic()
        if text != self._shown and now - self._at >= self.EVERY_SECONDS:
            self._notify.status(text)
            self._shown, self._at = text, now


def _sleep(rt: Runtime, watcher: Any, seconds: float | None, pulse: Any) -> None:
    """Wait for the next scan: the interval, a filesystem event, or stop, whichever comes first.

    The wait is cut into steps short enough for the heartbeat to ping the systemd watchdog on
    time whatever MONITOR_INTERVAL is.
    """
    deadline = time.monotonic() + (rt.settings.monitor_interval if seconds is None else seconds)
    while not rt.stop.is_set():
        pulse.beat()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        step = min(remaining, pulse.step_seconds)
        if watcher is not None:
            if watcher.wait(step):
                watcher.drain_hints()
                return
        else:
            rt.stop.wait(step)


def _wait_for_database(rt: Runtime) -> None:
    """Create the schema, retrying with backoff while the database is unreachable."""
    for attempt in Retrying(
        retry=retry_if_exception_type(DatabaseUnavailableError),
        wait=wait_exponential_jitter(initial=1, max=30),
        stop=lambda state: rt.stop.is_set(),
        reraise=True,
    ):
        with attempt:
            try:
                rt.db.init_db()
                _db_recovered(rt)
            except DatabaseUnavailableError as exc:
                _db_failed(rt, exc)
                log.warning("database unavailable at start-up; retrying", error=str(exc))
                raise


def _shutdown(rt: Runtime, pool: ThreadPoolExecutor, futures: dict[Path, Future[str]]) -> None:
    """Let loads in flight finish within the grace period, then roll the rest back."""
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + rt.settings.shutdown_timeout_seconds
    for future in futures.values():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with contextlib.suppress(Exception):
            future.result(timeout=remaining)
    if any(not f.done() for f in futures.values()):
        rt.abort.set()
        for future in futures.values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def _start_health(rt: Runtime, metrics: Any) -> Any:
    from backend.daemon.health import start_health_server

    token = rt.settings.health_token.get_secret_value() if rt.settings.health_token else None
    return start_health_server(
        rt.settings.health_host,
        rt.settings.health_port,
        token=token,
        liveness=lambda: liveness(rt),
        readiness=lambda: readiness(rt),
        status=lambda: status_snapshot(rt),
        metrics=metrics.render,
    )


def _start_housekeeping(rt: Runtime) -> Any:
    from apscheduler.schedulers.background import BackgroundScheduler

    from backend.ops.retention import prune_backups

    # APScheduler 3 skips runs silently with its defaults (misfire grace 1 s): be explicit.
    job = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
    scheduler = BackgroundScheduler(daemon=True, job_defaults=job)
    lease = rt.settings.lease_seconds

    def heartbeat() -> None:
        with rt.lock:
            ids = [i for i in rt.in_flight.values() if i is not None]
        with contextlib.suppress(IngestError):
            claim.renew(rt.db, ids)

    def recover() -> None:
        with contextlib.suppress(IngestError):
            claim.recover_stale(rt.db)
            claim.reconcile_moves(rt.db)

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
    scheduler.get_job("retention").modify(next_run_time=_soon())
    return scheduler


def _soon() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(seconds=5)
