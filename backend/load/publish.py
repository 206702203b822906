"""Publish staged rows into ``ref.<table>`` in ONE transaction, keeping the old rows in ``bkp``.

Inside the transaction, in this order: take the table's publish lock; create the live table on
a first load; widen text columns that the new values outgrow; for a fullload, copy the current
rows into ``bkp.<table>`` under the next version number and delete them; insert the new rows;
flip the tracking row to ``loaded``; upsert the reference configuration; write the audit event.
A reader sees the old contents or the new ones, never an empty or partial table, and any error
rolls every step back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend import faults, tracking
from backend.db.engine import Database
from backend.errors import RowError
from backend.load.evolve import align_backup, kind_of
from backend.load.plan import backup_definition, backup_index_name, evolve_live, final_types, prepare_live
from backend.models import ColumnKind, ColumnType, LoadType, TablePlan
from backend.tracking import add_event, to_json, utcnow


@dataclass(frozen=True, slots=True)
class Published:
    rows_loaded: int
    backup_version: int | None
    reference_config_inserted: bool


def publish(
    conn: Connection,
    db: Database,
    plan: TablePlan,
    source: sa.Select[Any],
    *,
    load_type: LoadType,
    tracking_id: int,
    expected_rows: int,
    column_types: Sequence[ColumnType],
    is_reference: bool,
    tracking_values: dict[str, Any],
    convert: bool = True,
    events: Sequence[tuple[str, dict[str, Any]]] = (),
    make_current: bool = True,
) -> Published:
    """Move `source` rows (columns ``_row_number`` then the plan's columns) into the live table.

    `conn` must already be inside the write transaction (`Database.write`); the caller commits.
    With `make_current` False a fullload's rows become the next bkp version only and the live
    table is not touched (issue 14: an older file that arrived after a newer one).
    """
    schema = db.catalog.data_schema
    # Serialise publishers of this table before looking at it: two first loads must not both
    # create it, and version numbers must not be handed out twice.
    db.adapter.serialize_publish(conn, schema, plan.table)
    live, created = prepare_live(conn, db, plan, column_types, load_type)
    now = utcnow()
    if load_type is LoadType.FULLLOAD and not make_current and not created:
        return _keep_as_version(
            conn, db, plan, live, source, tracking_id, now, expected_rows, column_types, tracking_values,
            convert=convert, events=events,
        )  # fmt: skip
    backup_version = None
    if load_type is LoadType.FULLLOAD:
        backup_version = _backup_and_clear(conn, db, live, tracking_id, now)
    # Schema evolution (add_columns / replace) once the old rows are safe in bkp.
    live, evolved = evolve_live(conn, db, plan, live, column_types, tracking_id)
    stored = final_types(live, plan, column_types, plan.columns if created else evolved)
    faults.hit("publish.before_insert")
    inserted = conn.execute(
        sa.insert(live).from_select(
            [*plan.columns, "_load_id", "_row_number", "_loaded_at", "_load_type"],
            _convert(db, live, plan, source, tracking_id, now, load_type, stored, convert=convert),
        )
    ).rowcount
    if inserted is not None and inserted >= 0 and inserted != expected_rows:
        raise RowError(f"published {inserted} rows but staged {expected_rows}; rolled back", stage="publish")
    if load_type is LoadType.FULLLOAD:
        tracking.release_replaced_keys(conn, db, plan.table, tracking_id)
    cfg_inserted = tracking.upsert_reference_cfg(conn, db, plan.table, tracking_id) if is_reference else False
    tracking.mark_loaded(
        conn,
        db,
        tracking_id,
        rows_loaded=expected_rows,
        backup_version=backup_version,
        reference_config_inserted=cfg_inserted,
        column_types=tracking.encode_types(stored),
        **tracking_values,
    )
    for name, details in events:
        add_event(conn, db, tracking_id, name, details)
    add_event(
        conn,
        db,
        tracking_id,
        "published",
        {
            "table": f"{schema}.{plan.table}",
            "rows": expected_rows,
            "load_type": load_type.value,
            "backup_version": backup_version,
        },
    )
    faults.hit("publish.before_commit")
    return Published(expected_rows, backup_version, cfg_inserted)


def _keep_as_version(
    conn: Connection,
    db: Database,
    plan: TablePlan,
    live: sa.Table,
    source: sa.Select[Any],
    tracking_id: int,
    now: datetime,
    expected_rows: int,
    column_types: Sequence[ColumnType],
    tracking_values: dict[str, Any],
    *,
    convert: bool,
    events: Sequence[tuple[str, dict[str, Any]]],
) -> Published:
    """Insert the staged rows into bkp under the next version; the live table stays as it is."""
    missing = [c for c in plan.columns if c not in live.c]
    if missing:
        raise RowError(
            f"{plan.table}: this file is kept as a version only (the table holds a newer one), but its "
            f"columns {missing} are not in the table, so bkp cannot hold them; load it with --table "
            "into a table of its own, or restore the table's structure first",
            stage="publish",
        )
    backup = ensure_backup_table(conn, db, live)
    version = (
        int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(backup.c._bkp_version), 0))).scalar_one()) + 1
    )
    stored = final_types(live, plan, column_types, ())
    rows = _convert(db, live, plan, source, tracking_id, now, LoadType.FULLLOAD, stored, convert=convert)
    sub = rows.subquery("v")
    metadata = ["_load_id", "_row_number", "_loaded_at", "_load_type"]
    inserted = conn.execute(
        sa.insert(backup).from_select(
            ["_bkp_version", "_bkp_load_id", "_bkp_at", *plan.columns, *metadata],
            sa.select(
                sa.literal(version, sa.Integer),
                sa.literal(tracking_id, sa.BigInteger),
                sa.literal(now, sa.DateTime),
                *sub.c,
            ),
        )
    ).rowcount
    if inserted is not None and inserted >= 0 and inserted != expected_rows:
        raise RowError(f"kept {inserted} rows but staged {expected_rows}; rolled back", stage="publish")
    tracking.mark_loaded(
        conn,
        db,
        tracking_id,
        rows_loaded=expected_rows,
        backup_version=version,
        reference_config_inserted=False,
        column_types=tracking.encode_types(stored),
        **tracking_values,
    )
    for name, details in events:
        add_event(conn, db, tracking_id, name, details)
    add_event(
        conn,
        db,
        tracking_id,
        tracking.KEPT_AS_VERSION,
        {
            "table": f"{db.catalog.backup_schema}.{plan.table}",
            "rows": expected_rows,
            "backup_version": version,
        },
    )
    faults.hit("publish.before_commit")
    return Published(expected_rows, version, False)


def _backup_and_clear(
    conn: Connection, db: Database, live: sa.Table, tracking_id: int, now: datetime
) -> int | None:
    """Copy the live rows into bkp under the next version and empty the live table."""
    has_rows = conn.execute(sa.select(sa.literal(1)).select_from(live).limit(1)).first() is not None
    if not has_rows:
        return None
    backup = ensure_backup_table(conn, db, live)
    version = (
        int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(backup.c._bkp_version), 0))).scalar_one()) + 1
    )
    columns = [c.name for c in live.columns]
    conn.execute(
        sa.insert(backup).from_select(
            ["_bkp_version", "_bkp_load_id", "_bkp_at", *columns],
            sa.select(
                sa.literal(version, sa.Integer),
                sa.literal(tracking_id, sa.BigInteger),
                sa.literal(now, sa.DateTime),
                *(live.c[c] for c in columns),
            ),
        )
    )
    conn.execute(sa.delete(live))
    return version


def ensure_backup_table(conn: Connection, db: Database, live: sa.Table) -> sa.Table:
    """The bkp table of `live`, created on first use and widened to match it."""
    backup = db.reflect(conn, live.name, db.catalog.backup_schema)
    if backup is None:
        backup = backup_definition(db, live)
        backup.create(conn)
        return backup
    # bkp follows every definition the table has had: add new columns, widen changed ones.
    backup = align_backup(conn, db, backup, live)
    if not any([c.name for c in index.columns] == ["_bkp_version"] for index in backup.indexes):
        # A bkp table from before the version index: add it once (checkfirst asks the catalog,
        # since another process may just have added it).
        sa.Index(backup_index_name(live.name), backup.c._bkp_version).create(conn, checkfirst=True)
        db.forget_table(db.catalog.backup_schema, backup.name)
    return backup


def _convert(
    db: Database,
    live: sa.Table,
    plan: TablePlan,
    source: sa.Select[Any],
    tracking_id: int,
    now: datetime,
    load_type: LoadType,
    stored: dict[str, ColumnType],
    *,
    convert: bool,
) -> sa.Select[Any]:
    """SELECT that turns staged text into the live table's column values (as-is when not `convert`).

    Every value bound for a typed column has passed `backend.load.convert`'s exact check, so the
    casts neither round nor default; an empty cell of a typed column is NULL whatever
    EMPTY_AS_NULL says (no number or date is written as nothing).
    """
    sub = source.subquery("s")
    exprs: list[Any] = []
    for name in plan.columns:
        value: Any = sub.c[name]
        if not convert:
            exprs.append(value)
            continue
        column_type = stored.get(name)
        typed = column_type is not None and column_type.kind is not ColumnKind.TEXT
        if typed or db.settings.empty_as_null:
            value = sa.func.nullif(value, "")
        exprs.append(db.adapter.cast_text(value, live.c[name].type, column_type))
    return sa.select(
        *exprs,
        sa.literal(tracking_id, sa.BigInteger),
        sub.c._row_number,
        sa.literal(now, sa.DateTime),
        sa.literal(load_type.value, sa.String(16)),
    )


__all__ = ["Published", "ensure_backup_table", "kind_of", "publish", "to_json"]
