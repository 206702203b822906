"""The load pipeline for one file: detect -> plan -> write -> check -> publish, with tracking throughout.

Order of steps and why (crash safety):

1. A tracking row in status ``processing`` is written first (the daemon writes it as its claim),
   so every attempt is visible and a crash leaves a row that recovery can close.
2. Detection and planning only read.
3. The rows are written where readers do not see them yet: a new version table (fullload) or
   the live table inside an uncommitted transaction (append), see `backend.load.attempt`.
4. The file's bytes are hashed while they are read; if they differ from the claimed hash (or
   size/mtime moved), the load is abandoned before anything is published.
5. Publish is one short transaction that also flips the tracking row to ``loaded``: after a
   crash either both happened or neither did, so an append can never be applied twice unnoticed.
6. Only after the commit may the caller move the file (see `backend.daemon.settle`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from backend import tracking
from backend.config import Settings
from backend.db.engine import Database, translate_error
from backend.errors import (
    CancelledError,
    EmptyFileError,
    FileRejectedError,
    IngestError,
    InjectedFault,
    RetryableError,
)
from backend.files import open_regular_file
from backend.load.attempt import attempt
from backend.load.context import Again, CancelCheck, LoadContext
from backend.load.stacked import write_other_blocks
from backend.models import Detection, LoadRequest, LoadResult
from backend.naming import normalize_columns, normalize_identifier, shorten, table_name_from_file
from backend.policies import TablePolicy, load_table_policy

if TYPE_CHECKING:
    from backend.load.readers.source import FormatSource

log = structlog.get_logger(__name__)

#: Below this size the detection is written with the publish (or the failure) instead of in a
#: commit of its own: such a file is loaded in milliseconds, and a burst of small files paid
#: that commit on every one. A larger file's row shows its detection while it loads.
DEFER_DETECTION_BELOW_BYTES = 1 << 20


@dataclass
class LoadHooks:
    """Callbacks the daemon passes in; the CLI uses the defaults."""

    #: Raises CancelledError when an operator asked to stop this load.
    check_cancel: CancelCheck | None = None
    #: Extra values for the tracking row when the load publishes.
    extra_tracking: dict[str, Any] = field(default_factory=dict)
    #: After each staged batch: (rows staged so far, estimated rows or None); the CLI progress bar.
    on_progress: Callable[[int, int | None], None] | None = None


def resolve_table(request: LoadRequest, max_length: int) -> str:
    if request.table:
        name = normalize_identifier(request.table)
        if not name:
            raise FileRejectedError(f"--table {request.table!r} has no usable characters", stage="plan")
        if name[0].isdigit():
            name = "t_" + name
        return shorten(name, request.table, max_length)
    return table_name_from_file(request.path, max_length)


def header_names(detection: Detection) -> tuple[str, ...]:
    """The original header cells, or column_1..N for a file without a header."""
    if detection.header_rows > 0:
        return detection.headers
    return tuple(f"column_{i}" for i in range(1, len(detection.headers) + 1))


def load_file(
    db: Database, settings: Settings, request: LoadRequest, hooks: LoadHooks | None = None
) -> LoadResult:
    """Load one file end to end; on any error nothing is published and the tracking row says why.

    Raises:
        FileRejectedError: the file is bad (goes to error/).
        RetryableError: transient (database down, file changed); try again later.
    """
    from backend.detection import detect

    hooks = hooks or LoadHooks()
    started = time.monotonic()
    path = request.path
    tracking_id = request.tracking_id
    bound = log.bind(file=path.name)
    try:
        raw = open_regular_file(path)
    except IngestError as exc:
        # The daemon may already hold a claimed row for this file: close it, never leave it open.
        if tracking_id is not None:
            _close_failed(db, tracking_id, "retry" if isinstance(exc, RetryableError) else "error", exc)
        raise
    before = os.fstat(raw.fileno())
    try:
        if tracking_id is None:
            tracking_id = tracking.start(db, request, table=None, size=before.st_size, mtime=before.st_mtime)
        bound = bound.bind(tracking_id=tracking_id, load_id=tracking_id)
        if before.st_size == 0:
            raise EmptyFileError("{path.name}: file is empty (0 bytes)", path=path)
        table = resolve_table(request, db.adapter.max_identifier_length)
        policy = load_table_policy(settings.config_dir, table)
        # Detection reads the very file the loader opened (a path could be swapped for a symlink).
        # The content decides the format (issue 17); plain text goes the CSV way as always, read
        # as the operator's flag or else the table's policy says (issue 16: header, trailer,
        # stacked tables).
        source = _format_source(path, raw, settings, policy)
        detection = (
            detect(
                path,
                settings,
                source=raw,
                header=request.header if request.header is not None else policy.header,
                trailer_detection=policy.trailer_detection,
                stacked_tables=policy.stacked_tables,
            )
            if source is None
            else source.detection
        )
        headers = header_names(detection)
        columns = normalize_columns(
            headers, db.adapter.max_identifier_length, db.adapter.reserved_column_names
        )
        bound = bound.bind(table=table)
        tracking.record_detection(
            db, tracking_id, detection, table, columns, deferred=before.st_size < DEFER_DETECTION_BELOW_BYTES
        )
        ctx = LoadContext(
            db=db,
            settings=settings,
            request=request,
            tracking_id=tracking_id,
            raw=raw,
            before=before,
            detection=detection,
            table=table,
            columns=columns,
            headers=headers,
            policy=policy,
            records=source.records if source is not None else None,
            check_cancel=hooks.check_cancel,
            on_progress=hooks.on_progress,
            extra_tracking=dict(hooks.extra_tracking),
            rejects_path=rejects_file(settings, tracking_id, path.name),
        )
        try:
            outcome = attempt(ctx)
            if isinstance(outcome, Again):
                # Values did not fit: the plan now redefines or widens those columns (once).
                outcome = attempt(ctx, redo=outcome.plan)
                if isinstance(outcome, Again):
                    raise FileRejectedError(f"{path.name}: values still do not fit after widening", path=path)
        except sa.exc.DBAPIError as exc:
            raise translate_error(exc, stage="load") from exc
    except BaseException as exc:
        raw.close()
        error = exc if isinstance(exc, IngestError) else _wrap(exc, path, db)
        if tracking_id is not None:
            status = (
                "cancelled"
                if isinstance(error, CancelledError)
                else "retry"
                if isinstance(error, RetryableError)
                else "error"
            )
            _close_failed(db, tracking_id, status, error)
            error.details.setdefault("tracking_id", tracking_id)
        bound.warning("load failed", stage=error.stage, error=str(error), exc_info=error.stage == "bug")
        if error is exc:
            raise
        raise error from exc
    rejects = rejects_file(settings, tracking_id, path.name)
    block_records = 0
    try:
        block_records = write_other_blocks(raw, detection, rejects, decode_errors=settings.decode_errors)
        if block_records:
            tracking.event(db, tracking_id, "stacked_tables_rejected", {"records": block_records})
    except (OSError, IngestError) as exc:
        # The load is committed: a rejects file (or its event) that fails must not undo it.
        bound.warning("could not record the other stacked tables' records", error=str(exc))
    raw.close()
    seconds = time.monotonic() - started
    staged, published = outcome.staged, outcome.published
    bound.info(
        "loaded",
        rows=published.rows_loaded,
        format=detection.format,
        compression=detection.compression,
        format_mismatch=detection.format_mismatch,
        sheet=detection.sheet,
        encoding=detection.encoding,
        delimiter=detection.delimiter,
        batches=staged.batches,
        seconds=round(seconds, 3),
        outcome="loaded",
        path=str(path),
        load_type=request.load_type.value,
        size=before.st_size,
        backup_version=published.backup_version,
    )
    return LoadResult(
        tracking_id=tracking_id,
        table=table,
        load_type=request.load_type,
        rows_read=staged.rows_read,
        rows_loaded=published.rows_loaded,
        rows_rejected=staged.rows_rejected,
        batches=staged.batches,
        seconds=seconds,
        backup_version=published.backup_version,
        detection=detection,
        warnings=detection.warnings,
        block_records_rejected=block_records,
        rejects_path=rejects if rejects.exists() else None,
    )


def _format_source(path: Path, raw: Any, settings: Settings, policy: TablePolicy) -> FormatSource | None:
    """The reader for a file that is not plain delimited text, or None for the CSV path."""
    from backend.load.readers.source import open_source, sniff

    guess = sniff(path, raw)
    if guess is None:
        return None
    return open_source(
        path, raw, settings, guess, sheet=policy.sheet, trailer_detection=policy.trailer_detection
    )


def rejects_file(settings: Settings, tracking_id: int, file_name: str) -> Path:
    """Where a load writes the rows `RAGGED_ROWS=skip` left out (the daemon then moves it to error/)."""
    return settings.data_dir / "rejects" / f"{tracking_id}_{file_name}.rejects.csv"


def _close_failed(db: Database, tracking_id: int, status: str, error: IngestError) -> None:
    try:
        tracking.finish_failed(db, tracking_id, status, error)
    except IngestError as exc:
        # The database itself may be what failed; recovery closes the row later.
        log.warning("could not record the failure", tracking_id=tracking_id, error=str(exc))


def _wrap(exc: BaseException, path: Path, db: Database) -> IngestError:
    # Bulk paths talk to the driver directly (COPY, executemany), so its own errors arrive too.
    if isinstance(exc, sa.exc.DBAPIError) or db.adapter.is_driver_error(exc):
        return translate_error(exc)
    if isinstance(exc, KeyboardInterrupt):
        return CancelledError(f"{path.name}: interrupted", path=path)
    if isinstance(exc, InjectedFault):
        return FileRejectedError(f"{path.name}: {exc}", path=path, stage="fault")
    if isinstance(exc, MemoryError):
        return FileRejectedError(f"{path.name}: out of memory while loading", path=path)
    return FileRejectedError(
        f"{path.name}: unexpected {exc.__class__.__name__}: {exc}", path=path, stage="bug"
    )
