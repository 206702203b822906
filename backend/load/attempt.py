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

from typing import Any, Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from backend import tracking
from backend.db.engine import Database
from backend.errors import ArrowRefusedError, RetryableError, SchemaMismatchError, ValidationFailedError
from backend.load import versions
from backend.load.context import Again, LoadContext, Outcome
from backend.load.evolve import definition_of
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
from backend.load.write import commits_while_loading, write_rows
from backend.models import (
    ColumnKind,
    ColumnType,
    LoadType,
    StageResult,
    TypePolicy,
)
from backend.quality.gate import check_staged, profile_staged, record_failure
from backend.quality.profile import ProfileObserver
from backend.tracking import versions as catalogue

log = structlog.get_logger(__name__)

#: Plans made again when the table appeared or vanished meanwhile, before the load is retried later.
REPLANS = 3


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
        for _again in range(REPLANS):
            if opened is not None:
                break
            # Another load created (or restore dropped) the table between planning and the
            # publish lock: plan again against what is there now.
            conn.rollback()
            db.forget_table(db.catalog.data_schema, ctx.table)
            plan = _plan(conn, ctx)
            file_types = _file_types(ctx, plan)
            opened = _open_target(conn, ctx, plan, file_types)
        if opened is None:
            conn.rollback()
            raise RetryableError(
                f"table {ctx.table} kept appearing and disappearing while this load planned; "
                "it is tried again",
                stage="load",
            )
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
            # An append's rows join the current version: read once, under the publish lock.
            current = catalogue.current_version(conn, db, ctx.table) if version is None else None
            result = write_rows(conn, ctx, plan, target, version, stored, observer, current)
            if isinstance(result, Again):
                _abandon(conn, db, target, version, ctx)
                return result
            staged = result
            written = Written(
                ctx.table, target, request.load_type, version, staged.rows_staged, stored, current
            )
            evolved = _evolution_event(plan, target, fresh)
            published = _check_and_publish(conn, ctx, plan, written, staged, observer, evolved)
        except BaseException:
            _abandon(conn, db, target, version, ctx)
            raise
        return Outcome(staged, published)


def _plan(conn: Connection, ctx: LoadContext) -> SchemaPlan:
    """Plan against the table as it is (a table of an earlier release adopted first).

    One read transaction and one reflection for the usual case, a table already in the version
    layout: the plan is checked again under the publish lock anyway (`_open_target`).
    """
    db = ctx.db
    try:
        with conn.begin():
            live = db.reflect(conn, ctx.table, db.catalog.data_schema)
            legacy = live is not None and (
                catalogue.current_version(conn, db, ctx.table) is None
                or not db.adapter.in_version_layout(conn, db.catalog, ctx.table)
            )
            plan = None if legacy else _plan_table(conn, ctx, live)
        if plan is None:
            db.adapter.begin_write(conn)
            versions.adopt_legacy(conn, db, ctx.table)
            conn.commit()
            with conn.begin():
                plan = _plan_table(conn, ctx, "reflect")
    except SchemaMismatchError as exc:
        record_schema(db, ctx.tracking_id, exc.details)
        raise
    record_schema(db, ctx.tracking_id, plan.schema_details())
    return plan


def _plan_table(conn: Connection, ctx: LoadContext, live: sa.Table | None | Literal["reflect"]) -> SchemaPlan:
    return plan_table(
        conn,
        ctx.db,
        ctx.table,
        ctx.columns,
        ctx.headers,
        ctx.detection.column_types,
        ctx.policy,
        ctx.request.load_type,
        live=live,
    )


def _file_types(ctx: LoadContext, plan: SchemaPlan) -> dict[str, ColumnType]:
    """Types the file defines (new table, ``replace``, added columns): inferred over the whole
    file in a first pass under TYPE_POLICY=infer (a type the format declares, such as a Parquet
    column's, wins over the inferred one), unbounded text otherwise."""
    if ctx.type_policy is not TypePolicy.INFER:
        return {}
    wanted = set(plan.columns) if redefines(plan) else set(getattr(plan.evolution, "add", ()) or ())
    if not wanted:
        return {}
    from backend.detection.types import prefer_declared
    from backend.load.type_pass import infer_file_types

    misfit_text = set(plan.misfits)
    types = prefer_declared(infer_file_types(ctx), ctx.detection.declared_types)
    return {
        name: (ColumnType(ColumnKind.TEXT, length=t.length) if name in misfit_text else t)
        for name, t in zip(ctx.columns, types, strict=True)
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
    if commits_while_loading(ctx, version):
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
    longest, empty = staged.longest, staged.empty_counts
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
        requested = tracking.cancel_requested(db, ctx.tracking_id, conn)
        ctx.check_cancel(ctx.tracking_id, final=True, requested=requested)
    if commits_while_loading(ctx, written.version):
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
    # the commit and then finds the load committed ("too late"). Read in this transaction: the
    # row as flipped here carries any cancel committed before (see backend.daemon.cancel).
    if ctx.check_cancel is not None:
        requested = tracking.cancel_requested(db, ctx.tracking_id, conn)
        ctx.check_cancel(ctx.tracking_id, final=True, requested=requested)
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
        if version is not None and commits_while_loading(ctx, version):
            versions.drop_abandoned(conn, db, ctx.table, version)
    except sa.exc.SQLAlchemyError:
        conn.invalidate()  # a lost connection: recovery drops what the catalogue says is abandoned
