"""Settle one stable file: claim it, load it, move it; every way that can end is an `Outcome`.

Why in this order:

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
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import structlog

from backend import tracking
from backend.daemon import claim
from backend.daemon import folders as lifecycle
from backend.daemon.cancel import cancel_checker, remove_cancel_marker
from backend.daemon.order import current_or_version, policy_valid
from backend.daemon.runtime import Runtime
from backend.daemon.stability import ReadyFile
from backend.errors import (
    CancelledError,
    DatabaseUnavailableError,
    FileChangedError,
    FileRejectedError,
    IngestError,
    RetryableError,
)
from backend.load.loader import LoadHooks, load_file, rejects_file
from backend.models import LoadRequest, LoadResult
from backend.naming import table_name_from_file

log = structlog.get_logger(__name__)


class Outcome(str, Enum):
    """How settling one file ended."""

    LOADED = "loaded"
    DUPLICATE = "duplicate"
    ERROR = "error"
    CANCELLED = "cancelled"
    #: Not final: the file stays and is tried again (database down, file changed, move failed).
    RETRY = "retry"
    #: Another daemon holds the claim; looked at again after the next stability window.
    HELD = "held"
    #: The file disappeared (another daemon moved it, or someone deleted it).
    GONE = "gone"
    #: Not in a drop folder of ours.
    IGNORED = "ignored"


def process_file(rt: Runtime, ready: ReadyFile, published: Callable[[], None] | None = None) -> Outcome:
    """Claim, load and move one stable file; returns the outcome. Never raises.

    Args:
        published: called once the file's rows are committed, before the file is moved: its
            table may take its next file while this one goes to processed/ (the move reads and
            writes only this file's own tracking row).
    """
    settings, db = rt.settings, rt.db
    path = ready.path
    base = settings.dropoff_base_path
    kind = lifecycle.classify(path, base)
    bound = log.bind(file=path.name)
    if kind is None:
        return Outcome.IGNORED
    is_reference, load_type = kind
    folder = path.parent
    tracking_id: int | None = None
    loaded_id: int | None = None
    # Every line logged about this file, here and in the loader, carries these (issue 13).
    structlog.contextvars.bind_contextvars(path=str(path), load_type=load_type.value)
    try:
        sha256, size, mtime = claim.hash_file(path)
        table = table_name_from_file(path, db.adapter.max_identifier_length)
        structlog.contextvars.bind_contextvars(table=table)
        if not policy_valid(rt, table):
            rt.tracker.forget(path)  # looked at again after the next stability window
            return Outcome.HELD
        request = LoadRequest(path=path, load_type=load_type, is_reference=is_reference, sha256=sha256)
        outcome = claim.claim(db, request, table, size, mtime)
        if isinstance(outcome, claim.HeldElsewhere):
            bound.info(
                "claimed by another process", holder=outcome.holder.owner, tracking_id=outcome.holder.id
            )
            # Look again after the next stability window: if the holder dies before moving the
            # file, nobody else would ever pick it up.
            rt.tracker.forget(path)
            return Outcome.HELD
        if isinstance(outcome, claim.AlreadyLoaded):
            return already_loaded(rt, path, folder, request, table, size, outcome)
        tracking_id = outcome.tracking_id
        structlog.contextvars.bind_contextvars(tracking_id=tracking_id)
        with rt.lock:
            rt.in_flight[path] = tracking_id
        verdict = current_or_version(rt, table, path, mtime, load_type)
        result = load_file(
            db,
            settings,
            LoadRequest(
                path=path,
                load_type=load_type,
                is_reference=is_reference,
                sha256=sha256,
                tracking_id=tracking_id,
                make_current=verdict.current,
            ),
            LoadHooks(check_cancel=cancel_checker(rt, path)),
        )
        # From here on the data is committed: nothing below may mark the load failed.
        loaded_id, tracking_id = tracking_id, None
        if published is not None:
            published()
        return loaded(rt, path, folder, loaded_id, result)
    except RetryableError as exc:
        return retry_later(rt, path, exc, tracking_id)
    except IngestError as exc:
        return reject(rt, path, folder, exc, tracking_id, kind)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one file, never the daemon
        bound.exception("unexpected failure", tracking_id=tracking_id or loaded_id)
        if loaded_id is not None:
            rt.tracker.forget(path)  # committed: never send it to error/; the move is retried
            return Outcome.LOADED
        error = FileRejectedError(f"{path.name}: internal error {exc.__class__.__name__}: {exc}", stage="bug")
        if tracking_id is not None:
            with contextlib.suppress(IngestError):
                tracking.finish_failed(db, tracking_id, "error", error)
        return reject(rt, path, folder, error, tracking_id, kind)
    finally:
        with rt.lock:
            rt.in_flight.pop(path, None)
        remove_cancel_marker(path)
        structlog.contextvars.unbind_contextvars("path", "load_type", "table", "tracking_id")


def loaded(rt: Runtime, path: Path, folder: Path, tracking_id: int, result: LoadResult) -> Outcome:
    """A committed load: count it, remember it for /status, move the file to processed/."""
    rt.metrics.record_file(
        "loaded", table=result.table, rows=result.rows_loaded, seconds=result.seconds, finished_at=time.time()
    )
    rt.remember(
        {
            "tracking_id": tracking_id,
            "file": path.name,
            "status": "loaded",
            "table": result.table,
            "rows": result.rows_loaded,
        }
    )
    rt.outage.recovered()
    move_loaded(rt, path, folder, tracking_id)
    return Outcome.LOADED


def retry_later(rt: Runtime, path: Path, exc: RetryableError, tracking_id: int | None) -> Outcome:
    """Not the file's fault (database away, file changed, shutting down): it stays and is tried again."""
    rt.tracker.forget(path)
    if isinstance(exc, DatabaseUnavailableError):
        rt.outage.failed(exc)
    rt.metrics.record_retry(exc.stage)
    if tracking_id is not None:
        # Make sure the attempt is closed (the loader cannot while the database is away, and
        # does not when the file vanished before it was opened): an open row of ours would
        # keep the file "held" forever.
        close_attempt(rt, tracking_id, str(exc))
    log.warning("will retry", file=path.name, reason=str(exc), stage=exc.stage)
    return Outcome.RETRY


def reject_entry(rt: Runtime, path: Path, reason: str) -> Outcome:
    """Send something that is not a regular file (symlink, FIFO, device) to error/ with its reason."""
    kind = lifecycle.classify(path, rt.settings.dropoff_base_path)
    if kind is None:
        return Outcome.IGNORED
    error = FileRejectedError(f"{path.name}: {reason}; only regular files are loaded", stage="read")
    try:
        return reject(rt, path, path.parent, error, None, kind)
    except Exception:  # never let one entry stop the daemon
        log.exception("could not reject a non-regular file", file=path.name)
        return Outcome.RETRY


def move_loaded(rt: Runtime, path: Path, folder: Path, tracking_id: int, event_name: str = "moved") -> bool:
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
    record_move_later(rt, tracking_id, moved, event_name=event_name)
    place_rejects(rt, path.name, moved, folder, tracking_id)
    return True


def place_rejects(rt: Runtime, name: str, moved: Path, folder: Path, tracking_id: int) -> None:
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


def record_move_later(
    rt: Runtime, tracking_id: int, moved: Path, event_name: str = "moved", **values: Any
) -> None:
    try:
        tracking.record_move(rt.db, tracking_id, moved, event_name=event_name, **values)
    except IngestError as exc:
        # The file has moved; its row must say so once the database is back.
        log.warning(
            "could not record where the file went; will retry", tracking_id=tracking_id, error=str(exc)
        )
        with rt.lock:
            rt.unrecorded_moves[tracking_id] = (moved, values)
        if isinstance(exc, DatabaseUnavailableError):
            rt.outage.failed(exc)


def close_attempt(rt: Runtime, tracking_id: int, reason: str) -> None:
    """Close our `processing` row of an abandoned attempt as `retry`, now or once the database is back."""
    try:
        claim.recover_row(rt.db, tracking_id, reason, status=tracking.Status.RETRY)
    except IngestError:
        with rt.lock:
            rt.orphans[tracking_id] = reason


def already_loaded(
    rt: Runtime,
    path: Path,
    folder: Path,
    request: LoadRequest,
    table: str,
    size: int,
    outcome: claim.AlreadyLoaded,
) -> Outcome:
    db = rt.db
    holder = outcome.holder
    if outcome.recovered:
        # Our own earlier load committed, then the process died (or the move failed) before
        # the file reached processed/.
        if move_loaded(rt, path, folder, holder.id, event_name="moved_after_recovery"):
            log.warning(
                "moved a file whose load had committed earlier", file=path.name, tracking_id=holder.id
            )
        return Outcome.LOADED
    if not os.path.lexists(path):
        # Another daemon loaded and moved this very file while we were hashing it.
        return Outcome.GONE
    # The row stays `processing` until the file is in processed/: a duplicate row must never
    # name a file that another daemon moved (or someone deleted) under our feet.
    duplicate_id = tracking.start(db, request, table=table, size=size, mtime=None)
    try:
        moved = lifecycle.move_to_processed(path, folder, time.time())
    except OSError as exc:
        rt.tracker.forget(path)
        why = "disappeared" if isinstance(exc, FileNotFoundError) else f"could not be moved ({exc.strerror})"
        close_attempt(rt, duplicate_id, f"{path.name}: {why}")
        return Outcome.GONE if isinstance(exc, FileNotFoundError) else Outcome.RETRY
    record_move_later(
        rt,
        duplicate_id,
        moved,
        status="duplicate",
        processed_at=tracking.utcnow(),
        rows_loaded=0,
        error_message=f"same content as load {holder.id} ({holder.file_name}); not loaded again",
    )
    rt.metrics.record_file("duplicate", table=table)
    rt.remember({"tracking_id": duplicate_id, "file": path.name, "status": "duplicate", "table": table})
    log.info(
        "duplicate content, not loaded again", file=path.name, tracking_id=duplicate_id, original=holder.id
    )
    return Outcome.DUPLICATE


def reject(
    rt: Runtime,
    path: Path,
    folder: Path,
    exc: IngestError,
    tracking_id: int | None,
    kind: tuple[bool, Any],
) -> Outcome:
    """Move a refused file to error/ with its sidecar and close its tracking row; returns the outcome."""
    status = Outcome.CANCELLED if isinstance(exc, CancelledError) else Outcome.ERROR
    db = rt.db
    if tracking_id is None:
        tracking_id = _row_for_unclaimed(rt, path, kind)
        if tracking_id is None:
            return Outcome.RETRY
    sidecar = {
        "reason": str(exc),
        "stage": exc.stage,
        "exception_type": exc.__class__.__name__,
        "rows": list(exc.rows),
        "tracking_id": tracking_id,
        "details": exc.details,
    }
    if rt.outage.ok:
        sidecar["detection"] = tracking.detection_of(db, tracking_id)
    try:
        moved = lifecycle.move_to_error(path, folder, time.time(), sidecar)
    except FileNotFoundError:
        log.warning("file vanished before it could be moved to error/", file=path.name)
        with contextlib.suppress(IngestError):
            tracking.finish_failed(
                db, tracking_id, "retry", FileChangedError(f"{exc}; then the file vanished")
            )
        return Outcome.GONE
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
        return Outcome.RETRY
    record_move_later(
        rt,
        tracking_id,
        moved,
        status=status,
        claim_key=None,
        error_stage=exc.stage,
        error_message=str(exc)[:4000],
        processed_at=tracking.utcnow(),
    )
    place_rejects(rt, path.name, moved, folder, tracking_id)
    table = None
    with contextlib.suppress(IngestError):
        table = table_name_from_file(path, db.adapter.max_identifier_length)
    rt.metrics.record_file(status, table=table, stage=exc.stage)
    rt.remember({"tracking_id": tracking_id, "file": path.name, "status": status, "error": str(exc)})
    log.warning(
        "file rejected",
        file=path.name,
        path=str(path),
        table=table,
        tracking_id=tracking_id,
        load_type=kind[1].value,
        reason=str(exc),
        stage=exc.stage,
        moved_to=str(moved),
    )
    return status


def _row_for_unclaimed(rt: Runtime, path: Path, kind: tuple[bool, Any]) -> int | None:
    """A tracking row for a file refused before any claim (unreadable, not a regular file, a hard
    link); None when the database cannot take it now (the file then stays where it is)."""
    is_reference, load_type = kind
    request = LoadRequest(path=path, load_type=load_type, is_reference=is_reference)
    try:
        return tracking.start(rt.db, request, table=None, size=_size_of(path), mtime=None)
    except IngestError as db_exc:
        rt.tracker.forget(path)
        if isinstance(db_exc, DatabaseUnavailableError):
            rt.outage.failed(db_exc)
        log.warning("refused file kept until its tracking row can be written", file=path.name)
        return None


def _size_of(path: Path) -> int | None:
    try:
        return path.lstat().st_size
    except OSError:
        return None
