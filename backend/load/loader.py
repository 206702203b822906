"""The load pipeline for one file: detect -> plan -> stage -> publish, with tracking throughout.

Order of steps and why (crash safety):

1. A tracking row in status ``processing`` is written first (the daemon writes it as its claim),
   so every attempt is visible and a crash leaves a row that recovery can close.
2. Detection and planning only read.
3. Rows are staged into a temporary table of the load's own connection: a crash or kill drops
   it with the connection, and staging takes no lock on the live tables.
4. The file's bytes are hashed while they are read; if they differ from the claimed hash (or
   size/mtime moved), the load is abandoned before anything is published.
5. Publish is one transaction that also flips the tracking row to ``loaded``: after a crash
   either both happened or neither did, so an append can never be applied twice unnoticed.
6. Only after the commit may the caller move the file (see `service`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
import structlog

from backend import faults, tracking
from backend.config import Settings
from backend.db.engine import Database, translate_error
from backend.errors import (
    CancelledError,
    EmptyFileError,
    FileChangedError,
    FileRejectedError,
    IngestError,
    InjectedFault,
    RetryableError,
    RowError,
    SchemaMismatchError,
    ValidationFailedError,
)
from backend.files import open_regular_file
from backend.load.convert import Checker, Misfit, describe
from backend.load.csv_python import line_numbers
from backend.load.plan import SchemaPlan, plan_table, record_schema, with_misfits
from backend.load.publish import publish
from backend.load.stage import stage_records
from backend.models import Detection, LoadRequest, LoadResult, LoadType, TypePolicy
from backend.naming import normalize_columns, normalize_identifier, shorten, table_name_from_file
from backend.policies import TablePolicy, TypeMismatch, load_table_policy
from backend.quality.gate import check_staged, profile_staged, record_failure
from backend.quality.profile import ProfileObserver
from backend.quality.sensitive import redact, redact_row

log = structlog.get_logger(__name__)

#: Seconds between progress updates of the tracking row while staging.
PROGRESS_EVERY_SECONDS = 1.0


class HashingReader:
    """A binary file wrapper that hashes exactly the bytes handed to the parser."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0
        self._closed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        self.bytes_read += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size if size is not None and size >= 0 else 1 << 16)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        # A text wrapper closes its buffer when it is collected; the loader still needs the
        # raw file afterwards (hash check, fstat), so only mark this wrapper closed.
        self._closed = True

    def flush(self) -> None:
        return None

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False


@dataclass
class LoadHooks:
    """Callbacks the daemon passes in; the CLI uses the defaults."""

    #: Raises CancelledError when an operator asked to stop this load.
    check_cancel: Callable[[int], None] | None = None
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
    from backend.load.csv_python import iter_runs

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
            raise EmptyFileError(f"{path.name}: file is empty (0 bytes)", path=path)
        # Detection reads the very file the loader opened (a path could be swapped for a symlink).
        detection = detect(path, settings, source=raw)
        headers = header_names(detection)
        table = resolve_table(request, db.adapter.max_identifier_length)
        columns = normalize_columns(headers, db.adapter.max_identifier_length)
        bound = bound.bind(table=table)
        tracking.record_detection(db, tracking_id, detection, table, columns)
        table_policy = load_table_policy(settings.config_dir, table)
        result = _stage_and_publish(
            db,
            settings,
            request,
            hooks,
            tracking_id,
            raw,
            detection,
            table,
            columns,
            headers,
            table_policy,
            iter_runs,
            before,
        )
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
    raw.close()
    seconds = time.monotonic() - started
    bound.info(
        "loaded",
        rows=result.rows_loaded,
        encoding=detection.encoding,
        delimiter=detection.delimiter,
        batches=result.batches,
        seconds=round(seconds, 3),
        outcome="loaded",
        path=str(path),
        load_type=request.load_type.value,
        size=before.st_size,
        backup_version=result.backup_version,
    )
    return LoadResult(
        tracking_id=tracking_id,
        table=table,
        load_type=request.load_type,
        rows_read=result.rows_read,
        rows_loaded=result.rows_loaded,
        rows_rejected=result.rows_rejected,
        batches=result.batches,
        seconds=seconds,
        backup_version=result.backup_version,
        detection=detection,
        warnings=detection.warnings,
    )


@dataclass(frozen=True, slots=True)
class _Done:
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    batches: int
    backup_version: int | None


def _stage_and_publish(
    db: Database,
    settings: Settings,
    request: LoadRequest,
    hooks: LoadHooks,
    tracking_id: int,
    raw: IO[bytes],
    detection: Detection,
    table: str,
    columns: tuple[str, ...],
    headers: tuple[str, ...],
    table_policy: TablePolicy,
    iter_runs: Callable[..., Any],
    before: os.stat_result,
) -> _Done:
    # Precedence: the operator's flag, then the table's policy file, then the global setting.
    policy = request.ragged_rows or table_policy.ragged_rows or settings.ragged_rows
    type_policy = request.type_policy or table_policy.type_policy or settings.type_policy
    hashing = HashingReader(raw)
    batch_rows = _batch_rows(settings, detection)
    records = iter_runs(
        hashing, detection, width=len(columns), size=batch_rows, decode_errors=settings.decode_errors
    )
    estimated = detection.estimated_rows
    last_progress = [time.monotonic()]

    def on_batch(rows_done: int) -> None:
        faults.hit("stage.batch")
        if hooks.check_cancel is not None:
            hooks.check_cancel(tracking_id)
        if hooks.on_progress is not None:
            hooks.on_progress(rows_done, estimated)
        now = time.monotonic()
        if now - last_progress[0] >= PROGRESS_EVERY_SECONDS:
            last_progress[0] = now
            percent = min(99.0, 100.0 * rows_done / estimated) if estimated else None
            tracking.update(db, tracking_id, rows_done=rows_done, progress_percent=percent)

    types = None
    if type_policy is TypePolicy.INFER:
        from backend.detection.types import TypeTracker

        types = TypeTracker(len(columns), date_order=settings.date_order)
    # The profile is gathered while rows stream into staging (it wraps the type tracker).
    # Empty cells are counted in the staging table (stage.column_stats), not per value here.
    observer = ProfileObserver(len(columns), types, count_empty=False)
    rejects_path = rejects_file(settings, tracking_id, request.path.name)
    try:
        with db.engine.connect() as conn:
            # One name for every load: the stage is the connection's own temporary table (dropped,
            # or the connection discarded, after each load), and a fixed name lets SQLAlchemy reuse
            # its compiled statements, which a burst of small files into one table pays per file.
            stage = db.adapter.stage_table(sa.MetaData(), "refdata_stage", columns)
            try:
                try:
                    with conn.begin():
                        plan = plan_table(
                            conn,
                            db,
                            table,
                            columns,
                            headers,
                            detection.column_types,
                            table_policy,
                            request.load_type,
                        )
                except SchemaMismatchError as exc:
                    record_schema(db, tracking_id, exc.details)
                    raise
                record_schema(db, tracking_id, plan.schema_details())
                targets = plan.typed_targets() if isinstance(plan, SchemaPlan) else {}
                checker = Checker({columns.index(c): (c, t) for c, t in targets.items()})
                # The staging transaction touches only the connection's temporary table.
                with conn.begin():
                    staged = stage_records(
                        conn,
                        db,
                        stage,
                        records,
                        width=len(columns),
                        policy=policy,
                        delimiter=detection.delimiter,
                        batch_rows=batch_rows,
                        types=observer,
                        on_batch=on_batch,
                        rejects_path=rejects_path,
                        checker=checker,
                        redact_row=redact_row(table_policy, columns),
                    )
                _check_unchanged(request, raw, hashing, before)
                misfits = checker.misfits()
                if misfits:
                    plan = _settle_misfits(plan, misfits, table_policy, request, raw, detection, headers, db)
                if (
                    staged.rows_staged == 0
                    and request.load_type is LoadType.FULLLOAD
                    and not (request.allow_empty_fullload or settings.allow_empty_fullload)
                ):
                    raise EmptyFileError(
                        f"{request.path.name}: no data rows; a fullload would empty table {table} "
                        "(set ALLOW_EMPTY_FULLLOAD=true to allow it)",
                        path=request.path,
                    )
                tracking.event(
                    db,
                    tracking_id,
                    "staged",
                    {
                        "rows_read": staged.rows_read,
                        "rows_staged": staged.rows_staged,
                        "rows_rejected": staged.rows_rejected,
                        "batches": staged.batches,
                        "repaired_lines": list(staged.repaired_lines[:1000]),
                        "rejected_lines": list(staged.rejected_lines[:1000]),
                    },
                )
                try:
                    with conn.begin():
                        profile = profile_staged(
                            conn,
                            db,
                            stage,
                            plan,
                            staged.column_types,
                            observer,
                            table_policy,
                            empty_counts=staged.empty_counts,
                        )
                        quality = check_staged(
                            conn,
                            db,
                            stage,
                            plan,
                            table_policy,
                            load_type=request.load_type,
                            rows_staged=staged.rows_staged,
                            column_types=staged.column_types,
                            profile=profile,
                            load_id=tracking_id,
                        )
                except ValidationFailedError as exc:
                    record_failure(db, tracking_id, exc)
                    raise

                source = sa.select(stage.c._row_number, *(stage.c[c] for c in columns))
                db.adapter.begin_write(conn)
                try:
                    published = publish(
                        conn,
                        db,
                        plan,
                        source,
                        load_type=request.load_type,
                        tracking_id=tracking_id,
                        expected_rows=staged.rows_staged,
                        column_types=quality.column_types,
                        is_reference=request.is_reference,
                        tracking_values={
                            "rows_read": staged.rows_read,
                            "rows_rejected": staged.rows_rejected,
                            "rows_done": staged.rows_staged,
                            "file_hash": hashing.sha256.hexdigest(),
                            "profile": tracking.to_json(quality.profile),
                            **hooks.extra_tracking,
                        },
                        # Recorded with the publish: one commit fewer per file.
                        events=(("validated", quality.report),),
                    )
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            finally:
                _drop_stage(db, conn, stage)
    except sa.exc.DBAPIError as exc:
        raise translate_error(exc, stage="stage") from exc
    return _Done(
        staged.rows_read,
        published.rows_loaded,
        staged.rows_rejected,
        staged.batches,
        published.backup_version,
    )


def _settle_misfits(
    plan: SchemaPlan,
    misfits: dict[str, Misfit],
    policy: TablePolicy,
    request: LoadRequest,
    raw: IO[bytes],
    detection: Detection,
    headers: tuple[str, ...],
    db: Database,
) -> SchemaPlan:
    """Decide what values that do not fit their typed columns mean for this load.

    A fullload under ``schema_evolution: replace`` redefines the table from the file; under
    ``type_mismatch: widen_to_text`` the columns become text; otherwise the file is refused,
    naming the line, the column and the value (masked when the column is sensitive).

    Raises:
        RowError: the file is refused; nothing was published.
    """
    if plan.evolution is not None and plan.evolution.may_redefine:
        return with_misfits(plan, list(misfits), widen=False)  # type: ignore[return-value]
    if policy.type_mismatch is TypeMismatch.WIDEN_TO_TEXT:
        log.info("widening columns to text", file=request.path.name, table=plan.table, columns=list(misfits))
        return with_misfits(plan, list(misfits), widen=True)  # type: ignore[return-value]
    rows = sorted({row for m in misfits.values() for row, _ in m.examples})
    lines = line_numbers(raw, detection, rows, decode_errors=db.settings.decode_errors)
    header_of = dict(zip(plan.file_columns, headers, strict=False))
    schema = db.catalog.data_schema
    parts = []
    for name, misfit in misfits.items():
        shown = [
            f"line {lines.get(row, '?')} {redact(policy, name, value)!r}" for row, value in misfit.examples
        ]
        more = f" and {misfit.count - len(shown)} more" if misfit.count > len(shown) else ""
        parts.append(
            f"column {header_of.get(name, name)!r} ({schema}.{plan.table}.{name}) takes "
            f"{describe(misfit.column_type)}, not {', '.join(shown)}{more}"
        )
    first_row, first_value = next(iter(misfits.values())).examples[0]
    first = next(iter(misfits))
    raise RowError(
        f"{request.path.name}: line {lines.get(first_row, '?')}, column {header_of.get(first, first)!r}: "
        f"{redact(policy, first, first_value)!r} does not fit; "
        + "; ".join(parts)
        + f". Nothing was loaded: fix the file, or set type_mismatch: widen_to_text in "
        f"config/tables/{plan.table}.yaml to turn such columns into text",
        path=request.path,
        rows=tuple(lines.get(r, r) for r in rows),
        details={"misfits": {n: m.count for n, m in misfits.items()}},
    )


def rejects_file(settings: Settings, tracking_id: int, file_name: str) -> Path:
    """Where a load writes the rows `RAGGED_ROWS=skip` left out (the daemon then moves it to error/)."""
    return settings.data_dir / "rejects" / f"{tracking_id}_{file_name}.rejects.csv"


def _batch_rows(settings: Settings, detection: Detection) -> int:
    """Rows per batch: the configured count, bounded by INGEST_BATCH_BYTES at the sample's row size."""
    rows = settings.ingest_batch_size
    if detection.sample_rows and detection.estimated_rows:
        # The sample is bounded by SAMPLE_BYTES, so bytes per row is well estimated from it.
        per_row = max(1, settings.sample_bytes // max(1, detection.sample_rows))
        rows = min(rows, max(1, settings.ingest_batch_bytes // per_row))
    return max(1, rows)


def _check_unchanged(
    request: LoadRequest, raw: IO[bytes], hashing: HashingReader, before: os.stat_result
) -> None:
    """Abort if the bytes read are not the bytes claimed, or the file moved under us."""
    # Drain what the parser did not need (e.g. trailing blank lines) so the hash covers the file.
    while raw.closed is False and (chunk := raw.read(1 << 20)):
        hashing.sha256.update(chunk)
        hashing.bytes_read += len(chunk)
    after = os.fstat(raw.fileno())
    digest = hashing.sha256.hexdigest()
    changed = (
        after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
        or hashing.bytes_read != after.st_size
        or (request.sha256 is not None and digest != request.sha256)
    )
    if changed:
        raise FileChangedError(
            f"{request.path.name}: file changed while it was being loaded; it will be retried when stable",
            path=request.path,
        )


def _drop_stage(db: Database, conn: sa.Connection, stage: sa.Table) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
        db.adapter.drop_stage(conn, stage)
    except sa.exc.SQLAlchemyError:
        # The temp table dies with the session; make sure the pool does not reuse it.
        conn.invalidate()


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
