"""Write a load's rows into their table: read the file (Arrow or Python reader), check every
batch against the typed columns it goes into, send it to the database's sink.

A refusal of the Arrow reader part-way, or values that do not fit, end the attempt before
anything is published (`attempt` then reads in Python, or plans again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend import faults, tracking
from backend.config import Settings
from backend.db.adapter import Rows, WriteSpec
from backend.errors import EmptyFileError
from backend.load.context import Again, LoadContext
from backend.load.convert import Checker
from backend.load.csv_python import iter_runs
from backend.load.measure import Measured
from backend.load.misfits import settle_misfits
from backend.load.plan import SchemaPlan
from backend.load.source import HashingReader, check_unchanged
from backend.load.stage import stream_records
from backend.models import ColumnKind, ColumnType, Detection, LoadType, StageResult
from backend.quality.profile import ProfileObserver
from backend.quality.sensitive import redact_row
from backend.tracking import versions as catalogue
from backend.tracking.events import utcnow

#: Seconds between progress updates of the tracking row while the rows are written.
PROGRESS_EVERY_SECONDS = 1.0


def write_rows(
    conn: Connection,
    ctx: LoadContext,
    plan: SchemaPlan,
    target: sa.Table,
    version: int | None,
    stored: dict[str, ColumnType],
    observer: ProfileObserver | None,
    current: catalogue.VersionRow | None,
) -> StageResult | Again:
    """Write the file's rows into `target`: a new version (`version`), or, for an append, the
    live table, whose current version `current` they join (None: the table has none yet)."""
    db, settings, request = ctx.db, ctx.settings, ctx.request
    typed = {c: t for c, t in stored.items() if c in plan.columns and t.kind is not ColumnKind.TEXT}
    checker = Checker({ctx.columns.index(c): (c, t) for c, t in typed.items()})
    spec = WriteSpec(
        columns=plan.columns,
        types=stored,
        load_id=ctx.tracking_id,
        loaded_at=utcnow(),
        load_type=request.load_type.value,
        version=version if version is not None else (current.version if current is not None else 1),
        empty_as_null=settings.empty_as_null,
    )
    hashing = HashingReader(ctx.raw)
    ctx.raw.seek(0)
    batch_rows = _batch_rows(settings, ctx.detection)
    reader = "arrow" if _reads_with_arrow(ctx) else "python"
    commits = commits_while_loading(ctx, version)
    on_batch = _on_batch(conn, ctx, commits)
    keep = [ctx.columns.index(c) for c in plan.columns]
    with db.adapter.writer(conn, target, spec) as sink:
        measured = Measured(sink, len(plan.columns), utf16=db.adapter.utf16_widths)
        sink = measured
        if keep != list(range(len(ctx.columns))):
            sink = _Project(sink, keep)  # ignore_extra: the file's extra columns are not written
        if reader == "arrow":
            from backend.load.arrow_csv import iter_arrow_runs
            from backend.load.arrow_stage import stream_arrow

            runs = iter_arrow_runs(
                hashing,  # type: ignore[arg-type]  # reads like a binary file
                ctx.detection,
                width=len(ctx.columns),
                size=batch_rows,
            )
            staged = stream_arrow(sink, runs, checker=checker, observer=observer, on_batch=on_batch)
        else:
            records = (
                ctx.records(hashing)  # type: ignore[arg-type]  # reads like a binary file
                if ctx.records is not None
                else iter_runs(
                    hashing,  # type: ignore[arg-type]  # reads like a binary file
                    ctx.detection,
                    width=len(ctx.columns),
                    size=batch_rows,
                    decode_errors=settings.decode_errors,
                )
            )
            staged = stream_records(
                sink,
                records,
                width=len(ctx.columns),
                policy=request.ragged_rows or ctx.policy.ragged_rows or settings.ragged_rows,
                delimiter=ctx.detection.delimiter,
                batch_rows=batch_rows,
                types=observer,
                on_batch=on_batch,
                rejects_path=ctx.rejects_path,
                checker=checker,
                redact_row=redact_row(ctx.policy, ctx.columns),
            )
    misfits = checker.misfits()
    if misfits:
        return Again(
            settle_misfits(plan, misfits, ctx.policy, request, ctx.raw, ctx.detection, ctx.headers, db)
        )
    check_unchanged(request, ctx.raw, hashing, ctx.before)
    if (
        staged.rows_staged == 0
        and request.load_type is LoadType.FULLLOAD
        and not (request.allow_empty_fullload or settings.allow_empty_fullload)
    ):
        raise EmptyFileError(
            f"{request.path.name}: no data rows; a fullload would empty table {ctx.table} "
            "(set ALLOW_EMPTY_FULLLOAD=true to allow it)",
            path=request.path,
        )
    tracking.defer(
        db,
        ctx.tracking_id,
        wait=True,  # written with the publish, in this connection's transaction
        event=(
            "staged",
            {
                "rows_read": staged.rows_read,
                "rows_staged": staged.rows_staged,
                "rows_rejected": staged.rows_rejected,
                "batches": staged.batches,
                "repaired_lines": list(staged.repaired_lines[:1000]),
                "rejected_lines": list(staged.rejected_lines[:1000]),
                "reader": reader,
                **({"arrow_refused": ctx.arrow_refused[0]} if ctx.arrow_refused else {}),
            },
        ),
    )
    ctx.extra_tracking["file_hash"] = hashing.sha256.hexdigest()
    return replace(staged, longest=tuple(measured.longest), empty_counts=tuple(measured.empty))


def _reads_with_arrow(ctx: LoadContext) -> bool:
    """Whether this attempt reads the file with the Arrow reader (`arrow_csv.eligible`)."""
    return ctx.db.adapter.arrow_native and arrow_eligible(ctx)


def arrow_eligible(ctx: LoadContext) -> bool:
    """Whether the Arrow reader may read this file, whatever the database takes: a plain CSV
    file it has not refused, large enough, in a dialect it reads exactly (`arrow_csv.eligible`)."""
    if ctx.arrow_refused or ctx.records is not None:
        return False
    # Small files gain nothing from columnar parsing and would pay pyarrow's import and memory
    # pool in every daemon that only ever sees them (a burst of small files stays lean).
    if ctx.before.st_size < ctx.settings.arrow_min_bytes:
        return False
    from backend.load.arrow_csv import eligible

    return eligible(ctx.detection, decode_errors=ctx.settings.decode_errors) is None


def commits_while_loading(ctx: LoadContext, version: int | None) -> bool:
    """Whether the new version is committed batch by batch (SQLite, SQL Server: other writers
    are not kept waiting). Only for a fullload: the first append into a table that does not
    exist yet holds the publish lock to the end, or a second first append would not see the
    table and would replace it."""
    return (
        ctx.db.adapter.commits_while_loading
        and version is not None
        and ctx.request.load_type is LoadType.FULLLOAD
    )


def _on_batch(conn: Connection, ctx: LoadContext, commits: bool) -> Callable[[int], None]:
    db, estimated = ctx.db, ctx.detection.estimated_rows
    last_progress = [time.monotonic()]

    def on_batch(rows_done: int) -> None:
        faults.hit("stage.batch")
        if ctx.check_cancel is not None:
            ctx.check_cancel(ctx.tracking_id)
        if ctx.on_progress is not None:
            ctx.on_progress(rows_done, estimated)
        if commits:
            # SQLite admits one writer: a new version is committed batch by batch, so that other
            # writers (other files' tracking rows, other daemons) are not kept waiting.
            conn.commit()
        now = time.monotonic()
        # Not while this connection holds SQLite's write lock: the update would wait for it.
        if (commits or not db.adapter.commits_while_loading) and now - last_progress[
            0
        ] >= PROGRESS_EVERY_SECONDS:
            last_progress[0] = now
            percent = min(99.0, 100.0 * rows_done / estimated) if estimated else None
            tracking.update(db, ctx.tracking_id, rows_done=rows_done, progress_percent=percent)
        if commits:
            db.adapter.begin_write(conn)

    return on_batch


class _Project:
    """A sink that passes on only the listed positions of every row (``ignore_extra``)."""

    def __init__(self, sink: Any, keep: list[int]) -> None:
        self._sink, self._keep = sink, keep

    def rows(self, first: int, rows: Rows) -> None:
        keep = self._keep
        self._sink.rows(first, [[row[i] for i in keep] for row in rows])

    def arrow(self, first: int, columns: Any) -> None:
        self._sink.arrow(first, [columns[i] for i in self._keep])


def _batch_rows(settings: Settings, detection: Detection) -> int:
    """Rows per batch: the configured count, bounded by INGEST_BATCH_BYTES at the sample's row size."""
    rows = settings.ingest_batch_size
    if detection.sample_rows and detection.estimated_rows:
        # The sample is bounded by SAMPLE_BYTES, so bytes per row is well estimated from it.
        per_row = max(1, settings.sample_bytes // max(1, detection.sample_rows))
        rows = min(rows, max(1, settings.ingest_batch_bytes // per_row))
    return max(1, rows)
