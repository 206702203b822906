"""One attempt at loading a detected file: plan, write its rows, check them, publish.

Where the rows go, and why:

- A **fullload** (or the first load of a table) writes into a new table of its own, the next
  version (`versions.create_version`). Readers keep seeing the current version meanwhile; the
  publish swaps the tables as metadata. PostgreSQL does all of it in one transaction; SQLite
  (one writer at a time) commits the new table batch by batch and cleans it up if the load fails
  or the process dies (`versions.drop_abandoned`).
- An **append** writes into the live table, inside the transaction that publishes it.

Every batch is checked against the typed columns it goes into before it is written
(`convert.Checker`): values that do not fit end the attempt, which either refuses the file or
asks for one more attempt with the columns redefined or widened (`misfits.settle_misfits`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from backend import faults, tracking
from backend.config import Settings
from backend.db.adapter import Rows, WriteSpec
from backend.db.engine import Database
from backend.errors import ArrowRefusedError, EmptyFileError, SchemaMismatchError, ValidationFailedError
from backend.load import versions
from backend.load.convert import Checker
from backend.load.csv_python import iter_rows, iter_runs
from backend.load.evolve import definition_of
from backend.load.misfits import settle_misfits
from backend.load.plan import (
    SchemaPlan,
    final_types,
    plan_table,
    prepare_append,
    record_schema,
    redefines,
    version_columns,
)
from backend.load.publish import Published, Written, publish
from backend.load.source import HashingReader, check_unchanged
from backend.load.stage import column_stats, stream_records
from backend.models import ColumnKind, ColumnType, Detection, LoadRequest, LoadType, StageResult, TypePolicy
from backend.policies import TablePolicy
from backend.quality.gate import check_staged, profile_staged, record_failure
from backend.quality.profile import ProfileObserver
from backend.quality.sensitive import redact_row
from backend.tracking import versions as catalogue
from backend.tracking.events import utcnow

log = structlog.get_logger(__name__)

#: Seconds between progress updates of the tracking row while the rows are written.
PROGRESS_EVERY_SECONDS = 1.0


class CancelCheck(Protocol):
    """Raises CancelledError when an operator asked to stop load `tracking_id`.

    Called between batches (it may look at the database only now and then), and with `final`
    immediately before the publish transaction and inside it just before its commit (it must
    look then: a cancel that lands while the file is written is never published).
    """

    def __call__(self, tracking_id: int, *, final: bool = False) -> None: ...


@dataclass(frozen=True)
class LoadContext:
    """Everything one load of one file knows before it writes a row."""

    db: Database
    settings: Settings
    request: LoadRequest
    tracking_id: int
    raw: IO[bytes]
    before: Any  # os.stat_result of the opened file
    detection: Detection
    table: str
    columns: tuple[str, ...]
    headers: tuple[str, ...]
    policy: TablePolicy
    check_cancel: CancelCheck | None = None
    #: After each batch: (rows written so far, estimated rows or None); the CLI's progress bar.
    on_progress: Callable[[int, int | None], None] | None = None
    extra_tracking: dict[str, Any] = field(default_factory=dict)
    rejects_path: Any = None
    #: Why the Arrow reader gave this load up (then every later attempt reads in Python).
    arrow_refused: list[str] = field(default_factory=list)

    @property
    def type_policy(self) -> TypePolicy:
        # Precedence: the operator's flag, then the table's policy file, then the global setting.
        return self.request.type_policy or self.policy.type_policy or self.settings.type_policy


@dataclass(frozen=True, slots=True)
class Outcome:
    """A published attempt."""

    staged: StageResult
    published: Published


@dataclass(frozen=True, slots=True)
class Again:
    """The attempt found values that do not fit; load once more under this plan."""

    plan: SchemaPlan


def attempt(ctx: LoadContext, *, redo: SchemaPlan | None = None) -> Outcome | Again:
    """Load the file once. Returns `Again` when the plan must change (only once per load)."""
    try:
        return _attempt(ctx, redo)
    except ArrowRefusedError as exc:
        # Abandoned already (rolled back, a committed version dropped): read it all again in Python.
        log.info("arrow reader refused the file; loading it with the python reader", reason=str(exc))
        ctx.arrow_refused.append(str(exc))
        return _attempt(ctx, redo)


def _attempt(ctx: LoadContext, redo: SchemaPlan | None) -> Outcome | Again:
    db, request = ctx.db, ctx.request
    with db.engine.connect() as conn:
        plan = redo or _plan(conn, ctx)
        file_types = _file_types(ctx, plan)
        opened = _open_target(conn, ctx, plan, file_types)
        while opened is None:
            # Another load created (or restore dropped) the table between planning and the
            # publish lock: plan again against what is there now.
            conn.rollback()
            plan = _plan(conn, ctx)
            file_types = _file_types(ctx, plan)
            opened = _open_target(conn, ctx, plan, file_types)
        target, version, fresh = opened
        try:
            stored = final_types(target, plan, file_types, fresh)
            # The profile follows the columns written; with ``ignore_extra`` (some of the file's left
            # out) it has only the counts the database takes.
            observer = (
                ProfileObserver(len(ctx.columns), None, count_empty=False)
                if len(plan.columns) == len(ctx.columns)
                else None
            )
            result = _write(conn, ctx, plan, target, version, stored, observer)
            if isinstance(result, Again):
                _abandon(conn, db, target, version, ctx)
                return result
            staged = result
            written = Written(ctx.table, target, request.load_type, version, staged.rows_staged, stored)
            evolved = _evolution_event(plan, target, fresh)
            published = _check_and_publish(conn, ctx, plan, written, staged, observer, evolved)
        except BaseException:
            _abandon(conn, db, target, version, ctx)
            raise
        return Outcome(staged, published)


def _plan(conn: Connection, ctx: LoadContext) -> SchemaPlan:
    db = ctx.db
    with conn.begin():
        legacy = db.reflect(conn, ctx.table, db.catalog.data_schema) is not None and (
            catalogue.current_version(conn, db, ctx.table) is None
            or not db.adapter.in_version_layout(conn, db.catalog, ctx.table)
        )
    if legacy:
        db.adapter.begin_write(conn)
        versions.adopt_legacy(conn, db, ctx.table)
        conn.commit()
    try:
        with conn.begin():
            plan = plan_table(
                conn,
                db,
                ctx.table,
                ctx.columns,
                ctx.headers,
                ctx.detection.column_types,
                ctx.policy,
                ctx.request.load_type,
            )
    except SchemaMismatchError as exc:
        record_schema(db, ctx.tracking_id, exc.details)
        raise
    record_schema(db, ctx.tracking_id, plan.schema_details())
    return plan


def _file_types(ctx: LoadContext, plan: SchemaPlan) -> dict[str, ColumnType]:
    """Types the file defines (new table, ``replace``, added columns): inferred over the whole
    file in a first pass under TYPE_POLICY=infer, unbounded text otherwise."""
    if ctx.type_policy is not TypePolicy.INFER:
        return {}
    wanted = set(plan.columns) if redefines(plan) else set(getattr(plan.evolution, "add", ()) or ())
    if not wanted:
        return {}
    from backend.detection.types import TypeTracker

    tracker = TypeTracker(len(ctx.columns), date_order=ctx.settings.date_order)
    ctx.raw.seek(0)
    for _number, _line, values in iter_rows(ctx.raw, ctx.detection, decode_errors=ctx.settings.decode_errors):
        tracker.observe(values)
    ctx.raw.seek(0)
    misfit_text = set(plan.misfits)
    return {
        name: (ColumnType(ColumnKind.TEXT, length=t.length) if name in misfit_text else t)
        for name, t in zip(ctx.columns, tracker.result(), strict=True)
        if name in wanted
    }


def _open_target(
    conn: Connection, ctx: LoadContext, plan: SchemaPlan, file_types: dict[str, ColumnType]
) -> tuple[sa.Table, int | None, tuple[str, ...]] | None:
    """Begin the write and return the table the rows go into, the new version's number (None:
    an append) and the columns defined from the file; None when the plan no longer matches
    whether the table exists."""
    db, adapter = ctx.db, ctx.db.adapter
    adapter.begin_write(conn)
    adapter.serialize_publish(conn, db.catalog.data_schema, ctx.table)
    live = db.reflect(conn, ctx.table, db.catalog.data_schema)
    if plan.exists != (live is not None):
        return None
    if ctx.request.load_type is LoadType.APPEND and live is not None:
        target, added = prepare_append(conn, db, plan, live, file_types)
        return target, None, added
    version = catalogue.next_version(conn, db, ctx.table)
    columns = version_columns(db, plan, live, file_types)
    target = versions.create_version(conn, db, ctx.table, version, columns)
    fresh = (
        plan.columns if live is None or redefines(plan) else tuple(getattr(plan.evolution, "add", ()) or ())
    )
    if _commits_while_loading(ctx, version):
        # The new table and its catalogue entry are committed before the rows: a crash leaves an
        # entry that names the table to drop.
        schema, name = target.schema or "", target.name
        catalogue.add_version(
            conn,
            db,
            table=ctx.table,
            version=version,
            schema=schema,
            name=name,
            load_id=ctx.tracking_id,
            rows=0,
            state=catalogue.LOADING,
        )
        conn.commit()
        adapter.begin_write(conn)
    return target, version, tuple(fresh)


def _write(
    conn: Connection,
    ctx: LoadContext,
    plan: SchemaPlan,
    target: sa.Table,
    version: int | None,
    stored: dict[str, ColumnType],
    observer: ProfileObserver | None,
) -> StageResult | Again:
    db, settings, request = ctx.db, ctx.settings, ctx.request
    typed = {c: t for c, t in stored.items() if c in plan.columns and t.kind is not ColumnKind.TEXT}
    checker = Checker({ctx.columns.index(c): (c, t) for c, t in typed.items()})
    current = None if version is not None else catalogue.current_version(conn, db, ctx.table)
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
    commits = _commits_while_loading(ctx, version)
    on_batch = _on_batch(conn, ctx, commits)
    keep = [ctx.columns.index(c) for c in plan.columns]
    with db.adapter.writer(conn, target, spec) as sink:
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
            records = iter_runs(
                hashing,  # type: ignore[arg-type]  # reads like a binary file
                ctx.detection,
                width=len(ctx.columns),
                size=batch_rows,
                decode_errors=settings.decode_errors,
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
    return staged


def _reads_with_arrow(ctx: LoadContext) -> bool:
    """Whether this attempt reads the file with the Arrow reader (`arrow_csv.eligible`)."""
    if ctx.arrow_refused or getattr(ctx, "records", None) is not None or not ctx.db.adapter.arrow_native:
        return False
    from backend.load.arrow_csv import eligible

    return eligible(ctx.detection, decode_errors=ctx.settings.decode_errors) is None


def _commits_while_loading(ctx: LoadContext, version: int | None) -> bool:
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


def _check_and_publish(
    conn: Connection,
    ctx: LoadContext,
    plan: SchemaPlan,
    written: Written,
    staged: StageResult,
    observer: ProfileObserver | None,
    evolved: tuple[tuple[str, dict[str, Any]], ...] = (),
) -> Published:
    db, request, target = ctx.db, ctx.request, written.target
    rows = this_load(db, target, ctx.tracking_id, plan.columns, written.stored)
    longest, empty = column_stats(conn, db, rows)
    types = tuple(
        _with_length(written.stored.get(c, ColumnType()), n)
        for c, n in zip(plan.columns, longest, strict=True)
    )
    try:
        profile = profile_staged(conn, db, rows, plan, types, observer, ctx.policy, empty_counts=empty)
        quality = check_staged(
            conn,
            db,
            rows,
            plan,
            ctx.policy,
            load_type=request.load_type,
            rows_staged=staged.rows_staged,
            column_types=types,
            profile=profile,
            load_id=ctx.tracking_id,
            target=target,
        )
    except ValidationFailedError as exc:
        conn.rollback()  # the report is written by another connection: SQLite's lock must be free
        record_failure(db, ctx.tracking_id, exc)
        raise
    if ctx.check_cancel is not None:
        ctx.check_cancel(ctx.tracking_id, final=True)
    if _commits_while_loading(ctx, written.version):
        conn.commit()
        db.adapter.begin_write(conn)  # the short publish transaction
    published = publish(
        conn,
        db,
        written,
        tracking_id=ctx.tracking_id,
        is_reference=request.is_reference,
        tracking_values={
            "rows_read": staged.rows_read,
            "rows_rejected": staged.rows_rejected,
            "rows_done": staged.rows_staged,
            "profile": tracking.to_json(quality.profile),
            **ctx.extra_tracking,
        },
        events=(("validated", quality.report), *evolved),
        make_current=request.make_current,
    )
    # Inside the transaction, after the tracking row is ours: a cancel arriving now waits for
    # the commit and then finds the load committed ("too late").
    if ctx.check_cancel is not None:
        ctx.check_cancel(ctx.tracking_id, final=True)
    conn.commit()
    return published


def _evolution_event(
    plan: SchemaPlan, target: sa.Table, fresh: tuple[str, ...]
) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The ``schema_evolved`` audit event of a load that changed the table's columns, if any."""
    if not plan.exists or plan.report is None or plan.evolution is None:
        return ()
    if redefines(plan):
        action = plan.evolution.action
        reason = plan.evolution.reason if action == "replace" else f"types changed: {sorted(plan.misfits)}"
        return (
            (
                "schema_evolved",
                {
                    "action": "replace",
                    "reason": reason,
                    "previous_definition": [
                        {"name": n, "type": t.kind.value} for n, t in plan.stored.items()
                    ],
                    "definition": definition_of(target),
                },
            ),
        )
    if plan.evolution.action == "add_columns" and fresh:
        return (("schema_evolved", {"action": "add_columns", "added": list(fresh)}),)
    return ()


def this_load(
    db: Database, target: sa.Table, load_id: int, columns: tuple[str, ...], stored: dict[str, ColumnType]
) -> sa.Subquery:
    """This load's rows as the file had them: typed values written back as text (for the rules,
    the profile and the SQL hooks, which all look at the file's text)."""
    exprs: list[Any] = [target.c._row_number]
    for name in columns:
        column_type = stored.get(name)
        value: Any = target.c[name]
        if column_type is not None and column_type.kind is not ColumnKind.TEXT:
            value = db.adapter.render_text(value, column_type)
        # A NULL came from an empty cell: the rules see the file's empty text.
        exprs.append(sa.case((target.c[name].is_(None), ""), else_=value).label(name))
    return sa.select(*exprs).where(target.c._load_id == load_id).subquery("refdata_stage")


def _with_length(column_type: ColumnType, length: int) -> ColumnType:
    from dataclasses import replace

    return replace(
        column_type, length=max(column_type.length if column_type.kind is not ColumnKind.TEXT else 0, length)
    )


def _abandon(conn: Connection, db: Database, target: sa.Table, version: int | None, ctx: LoadContext) -> None:
    """Undo an attempt that did not publish: roll back, and drop a new version SQLite committed."""
    try:
        if conn.in_transaction():
            conn.rollback()
        if version is not None and _commits_while_loading(ctx, version):
            versions.drop_abandoned(conn, db, ctx.table, version)
    except sa.exc.SQLAlchemyError:
        conn.invalidate()  # a lost connection: recovery drops what the catalogue says is abandoned


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
