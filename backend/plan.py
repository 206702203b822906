"""Decide the target table: its name, columns, and whether the file fits an existing table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.db.schema import TIMESTAMP
from backend.errors import SchemaMismatchError
from backend.models import ColumnKind, ColumnType, LoadType, TablePlan
from backend.naming import METADATA_COLUMNS

BACKUP_COLUMNS = ("_bkp_version", "_bkp_load_id", "_bkp_at")


def metadata_columns() -> list[sa.Column[Any]]:
    """The columns every loaded table carries besides the file's own."""
    return [
        sa.Column("_load_id", sa.BigInteger, nullable=False),
        sa.Column("_row_number", sa.BigInteger, nullable=False),
        sa.Column("_loaded_at", TIMESTAMP, nullable=False),
        sa.Column("_load_type", sa.String(16), nullable=False),
    ]


def data_columns(table: sa.Table) -> list[str]:
    """The file's columns of a live or backup table, in table order."""
    skip = set(METADATA_COLUMNS) | set(BACKUP_COLUMNS)
    return [c.name for c in table.columns if c.name not in skip]


def schema_report(existing: Sequence[str], incoming: Sequence[str]) -> dict[str, Any]:
    """Match percentage, missing and extra columns between a table and a file."""
    have, want = set(existing), set(incoming)
    union = have | want
    return {
        "match_percent": round(100.0 * len(have & want) / len(union), 1) if union else 100.0,
        "missing": [c for c in existing if c not in want],
        "extra": [c for c in incoming if c not in have],
    }


def plan_table(
    conn: Connection,
    db: Database,
    table: str,
    columns: tuple[str, ...],
    headers: tuple[str, ...],
    column_types: tuple[ColumnType, ...],
) -> TablePlan:
    """Check the file's columns against `ref.<table>` (if it exists) and describe the target."""
    existing = db.reflect(conn, table, db.catalog.data_schema)
    if existing is not None:
        current = data_columns(existing)
        report = schema_report(current, columns)
        if report["missing"] or report["extra"]:
            raise SchemaMismatchError(
                f"columns do not match table {db.catalog.data_schema}.{table} "
                f"({report['match_percent']}% match; missing from file: {report['missing'] or 'none'}; "
                f"not in table: {report['extra'] or 'none'})",
                details={"schema_report": report},
            )
    return TablePlan(
        table=table, columns=columns, headers=headers, column_types=column_types, exists=existing is not None
    )


def target_definition(db: Database, plan: TablePlan, types: Sequence[ColumnType]) -> sa.Table:
    """The `ref.<table>` definition for a first load: the file's columns, then metadata."""
    adapter = db.adapter
    return sa.Table(
        plan.table,
        sa.MetaData(),
        *(
            sa.Column(name, adapter.column_type(t), nullable=True)
            for name, t in zip(plan.columns, types, strict=True)
        ),
        *metadata_columns(),
        schema=db.catalog.data_schema,
    )


def backup_definition(db: Database, live: sa.Table) -> sa.Table:
    """The `bkp.<table>` definition: version columns, then every column of the live table."""
    return sa.Table(
        live.name,
        sa.MetaData(),
        sa.Column("_bkp_version", sa.Integer, nullable=False),
        sa.Column("_bkp_load_id", sa.BigInteger, nullable=False),
        sa.Column("_bkp_at", TIMESTAMP, nullable=False),
        *(sa.Column(c.name, c.type, nullable=True) for c in live.columns),
        schema=db.catalog.backup_schema,
    )


def needs_widening(column: sa.Column[Any], wanted: ColumnType) -> bool:
    """Whether a text column is too narrow for the incoming values."""
    if wanted.kind is not ColumnKind.TEXT:
        return False
    length = getattr(column.type, "length", None)
    return length is not None and wanted.length > length


def prepare_live(
    conn: Connection,
    db: Database,
    plan: TablePlan,
    column_types: Sequence[ColumnType],
    load_type: LoadType,
) -> sa.Table:
    """Inside the publish transaction: create `ref.<table>` on a first load, else lock and widen it.

    Returns the live table's current definition.
    """
    live = db.reflect(conn, plan.table, db.catalog.data_schema)
    if live is None:
        live = target_definition(db, plan, column_types)
        live.create(conn)
        return live
    db.adapter.lock_for_publish(conn, live)
    widened = False
    for name, wanted in zip(plan.columns, column_types, strict=True):
        if needs_widening(live.c[name], wanted):
            db.adapter.widen_column(conn, live, name, db.adapter.text_type(wanted.length))
            widened = True
    if widened:
        refreshed = db.reflect(conn, plan.table, db.catalog.data_schema)
        if refreshed is not None:
            live = refreshed
    return live
