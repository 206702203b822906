"""Publish a load in ONE short transaction: its rows become visible, its tracking row ``loaded``.

A fullload's rows already sit in a version table of their own: publishing swaps it in as
``ref.<table>`` and keeps the replaced version where it is, as metadata (`versions.swap_in`). An
append's rows already sit in the live table, uncommitted: publishing counts them into the current
version. In the same transaction: the claim keys of replaced contents are released, the tracking
row flips to ``loaded`` with its counts and the column types it stored, Reference_Data_Cfg is
upserted and the audit events are written. A reader sees the old contents or the new ones, never
an empty or partial table, and any error rolls every step back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend import faults, tracking
from backend.db.engine import Database
from backend.errors import RowError
from backend.load import versions
from backend.models import ColumnType, LoadType
from backend.tracking import versions as catalogue


@dataclass(frozen=True, slots=True)
class Published:
    rows_loaded: int
    backup_version: int | None
    reference_config_inserted: bool


@dataclass(frozen=True, slots=True)
class Written:
    """Where a load's rows were written, and what it wrote."""

    table: str
    target: sa.Table
    load_type: LoadType
    #: The new version's number (a fullload, or the first load of an append table).
    version: int | None
    rows: int
    stored: dict[str, ColumnType]
    #: An append: the current version its rows joined (read under the publish lock).
    current: catalogue.VersionRow | None = None


def publish(
    conn: Connection,
    db: Database,
    written: Written,
    *,
    tracking_id: int,
    is_reference: bool,
    tracking_values: dict[str, Any],
    events: Sequence[tuple[str, dict[str, Any]]] = (),
    make_current: bool = True,
) -> Published:
    """Make the written rows current; `conn` is inside the write transaction, the caller commits.

    With `make_current` False (a fullload older than the table's current one, see
    `backend.daemon.order`) the new version is only kept: the live table, the reference
    configuration and the claim keys stay as they are.
    """
    schema = db.catalog.data_schema
    found = conn.execute(
        sa.select(sa.func.count()).select_from(written.target).where(written.target.c._load_id == tracking_id)
    ).scalar_one()
    if int(found) != written.rows:
        raise RowError(f"wrote {found} rows but read {written.rows}; rolled back", stage="publish")
    faults.hit("publish.before_insert")
    if (
        not make_current
        and written.version is not None
        and catalogue.current_version(conn, db, written.table) is not None
    ):
        return _keep(
            conn,
            db,
            written,
            written.version,
            tracking_id=tracking_id,
            tracking_values=tracking_values,
            events=events,
        )
    backup_version = None
    if written.version is not None:
        swapped = versions.swap_in(
            conn,
            db,
            table=written.table,
            new=written.target,
            version=written.version,
            load_id=tracking_id,
            rows=written.rows,
        )
        backup_version = swapped.replaced
    elif written.current is not None:
        catalogue.add_rows(conn, db, written.current, written.rows)
    if written.load_type is LoadType.FULLLOAD:
        tracking.release_replaced_keys(conn, db, written.table, tracking_id)
    cfg_inserted = (
        tracking.upsert_reference_cfg(conn, db, written.table, tracking_id) if is_reference else False
    )
    return _record(
        conn,
        db,
        written,
        tracking_id=tracking_id,
        tracking_values=tracking_values,
        events=events,
        backup_version=backup_version,
        cfg_inserted=cfg_inserted,
        final=(
            "published",
            {
                "table": f"{schema}.{written.table}",
                "rows": written.rows,
                "load_type": written.load_type.value,
                "version": written.version,
                "backup_version": backup_version,
            },
        ),
    )


def _keep(
    conn: Connection,
    db: Database,
    written: Written,
    version: int,
    *,
    tracking_id: int,
    tracking_values: dict[str, Any],
    events: Sequence[tuple[str, dict[str, Any]]],
) -> Published:
    """Keep the written version beside the current one (it stays detached: its columns may differ)."""
    versions.set_aside(
        conn,
        db,
        table=written.table,
        new=written.target,
        version=version,
        load_id=tracking_id,
        rows=written.rows,
    )
    return _record(
        conn,
        db,
        written,
        tracking_id=tracking_id,
        tracking_values=tracking_values,
        # The table's definition did not change: no schema_evolved event.
        events=[(name, details) for name, details in events if name != "schema_evolved"],
        backup_version=version,
        cfg_inserted=False,
        final=(
            tracking.KEPT_AS_VERSION,
            {
                "table": f"{db.catalog.data_schema}.{written.table}",
                "rows": written.rows,
                "backup_version": version,
            },
        ),
    )


def _record(
    conn: Connection,
    db: Database,
    written: Written,
    *,
    tracking_id: int,
    tracking_values: dict[str, Any],
    events: Sequence[tuple[str, dict[str, Any]]],
    backup_version: int | None,
    cfg_inserted: bool,
    final: tuple[str, dict[str, Any]],
) -> Published:
    """The tracking row flipped to ``loaded`` and the audit events, in the publish transaction."""
    tracking.mark_loaded(
        conn,
        db,
        tracking_id,
        rows_loaded=written.rows,
        backup_version=backup_version,
        reference_config_inserted=cfg_inserted,
        column_types=tracking.encode_types(written.stored),
        events=(*events, final),
        **tracking_values,
    )
    faults.hit("publish.before_commit")
    return Published(written.rows, backup_version, cfg_inserted)
