"""Decide the target table: its name, columns, and whether (and how) the file fits an existing table.

`plan_table` runs before loading and only reads: it compares the file's columns with the table
(`evolve.analyze_schema`) and applies the table's schema-evolution policy (`evolve.decide`).
`version_columns` defines a fullload's new version table; `prepare_append` makes an append's DDL
happen on the live table inside its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend import tracking
from backend.db.engine import Database
from backend.db.schema import TIMESTAMP
from backend.errors import SchemaMismatchError
from backend.load.evolve import (
    Evolution,
    SchemaReport,
    add_column,
    analyze_schema,
    column_type_of,
    decide,
    kind_of,
    rendered_values,
)
from backend.models import ColumnKind, ColumnType, LoadType, TablePlan
from backend.naming import METADATA_COLUMNS
from backend.policies import TablePolicy

#: Columns of bkp tables made by releases before versions were tables of their own.
BACKUP_COLUMNS = ("_bkp_version", "_bkp_load_id", "_bkp_at")


@dataclass(frozen=True, slots=True)
class SchemaPlan(TablePlan):
    """A TablePlan that also carries the schema comparison and the evolution decision.

    `columns` are the columns the load writes (for ``ignore_extra`` the file's columns minus the
    ignored ones); `file_columns` are all the file's columns, in the order `column_types` follows.
    """

    file_columns: tuple[str, ...] = ()
    report: SchemaReport | None = None
    evolution: Evolution | None = None
    #: Columns whose values did not all fit their typed column (set after staging).
    misfits: frozenset[str] = frozenset()
    #: Typed columns the publish turns into text first (policy ``type_mismatch: widen_to_text``).
    widen: tuple[str, ...] = ()

    def typed_targets(self) -> dict[str, ColumnType]:
        """The typed columns of the existing table that this load writes values into."""
        return {c: t for c, t in self.stored.items() if c in self.columns and t.kind is not ColumnKind.TEXT}

    def schema_details(self) -> dict[str, Any]:
        return {
            "schema_report": self.report.to_dict() if self.report else None,
            "evolution": self.evolution.to_dict() if self.evolution else None,
        }


def metadata_columns() -> list[sa.Column[Any]]:
    """The columns every loaded table carries besides the file's own."""
    return [
        sa.Column("_load_id", sa.BigInteger, nullable=False),
        sa.Column("_row_number", sa.BigInteger, nullable=False),
        sa.Column("_loaded_at", TIMESTAMP, nullable=False),
        sa.Column("_load_type", sa.String(16), nullable=False),
        # The version the row belongs to: PostgreSQL partitions ref and bkp by it.
        sa.Column("_version", sa.Integer, nullable=False),
    ]


def data_columns(table: sa.Table) -> list[str]:
    """The file's columns of a live or backup table, in table order."""
    skip = set(METADATA_COLUMNS) | set(BACKUP_COLUMNS)
    return [c.name for c in table.columns if c.name not in skip]


def plan_table(
    conn: Connection,
    db: Database,
    table: str,
    columns: tuple[str, ...],
    headers: tuple[str, ...],
    column_types: tuple[ColumnType, ...],
    policy: TablePolicy | None = None,
    load_type: LoadType = LoadType.FULLLOAD,
    live: sa.Table | None | Literal["reflect"] = "reflect",
) -> SchemaPlan:
    """Compare the file's columns with ``ref.<table>`` (if it exists) and decide what the load does.

    Args:
        live: ``ref.<table>`` as the caller just reflected it in this transaction (None: it does
            not exist); by default reflected here. Either way once: the report and the stored
            types come from the same definition.

    Raises:
        SchemaMismatchError: the columns differ and the policy does not allow it; ``details`` hold
            ``schema_report`` and ``evolution`` for the tracking row.
    """
    policy = policy or TablePolicy(table=table)
    if isinstance(live, str):
        live = db.reflect(conn, table, db.catalog.data_schema)
    report = analyze_schema(conn, db, table, columns, live)
    evolution = decide(report, policy.evolution_for(load_type), load_type)
    if evolution.action == "fail":
        raise SchemaMismatchError(
            evolution.reason
            + (f" (schema_evolution: {evolution.policy.value}; see config/tables/{table}.yaml)"),
            details={"schema_report": report.to_dict(), "evolution": evolution.to_dict()},
        )
    loaded = tuple(c for c in columns if c not in set(evolution.ignore))
    return SchemaPlan(
        table=table,
        columns=loaded,
        headers=headers,
        column_types=column_types,
        exists=report.exists,
        file_columns=columns,
        report=report,
        evolution=evolution,
        stored=stored_types(conn, db, live) if live is not None else {},
    )


def stored_types(conn: Connection, db: Database, live: sa.Table) -> dict[str, ColumnType]:
    """Every data column of `live` as the table stores it, with the date formats and boolean
    spellings its latest load recorded (a table from before they were recorded gets the
    database's own ISO layouts and ``true``/``false``)."""
    recorded = tracking.recorded_types(conn, db, live.name)
    out: dict[str, ColumnType] = {}
    for name in data_columns(live):
        base = column_type_of(live.c[name].type)
        known = recorded.get(name)
        if known is not None and known.kind is base.kind:
            base = replace(
                base, date_format=known.date_format, true_text=known.true_text, false_text=known.false_text
            )
        out[name] = base
    return out


def with_misfits(plan: TablePlan, misfits: Sequence[str], *, widen: bool) -> TablePlan:
    """`plan` after staging found values that do not fit typed columns `misfits`."""
    if not isinstance(plan, SchemaPlan):
        return plan
    return replace(plan, misfits=frozenset(misfits), widen=tuple(misfits) if widen else ())


def record_schema(db: Database, tracking_id: int, details: dict[str, Any]) -> None:
    """Store the schema report in the tracking row; an audit event when the columns differ.

    Deferred (`tracking.defer`): written with the row's next write, at the latest the publish
    or the failure, instead of a commit of its own.
    """
    report, evolution = details.get("schema_report"), details.get("evolution")
    decision = None
    if evolution and evolution.get("action") not in ("none", "create"):
        decision = ("schema_decision", {**evolution, "schema_report": report})
    tracking.defer(
        db, tracking_id, event=decision, schema_report=tracking.to_json(report) if report else None
    )


def types_by_name(plan: TablePlan, column_types: Sequence[ColumnType]) -> dict[str, ColumnType]:
    """The staged type of every file column, by name (`column_types` follows the file's order)."""
    names = getattr(plan, "file_columns", None) or plan.columns
    return dict(zip(names, column_types, strict=True))


#: A text column of a new version: unbounded, so that no value ever has to be cut or refused for
#: its length, and no later file needs the column widened (PostgreSQL and SQLite store text and
#: varchar alike).
UNBOUNDED_TEXT = ColumnType(ColumnKind.TEXT, length=1 << 30)


def redefines(plan: TablePlan) -> bool:
    """Whether this load defines the table's columns from the file (a first load, or ``replace``)."""
    if not plan.exists:
        return True
    evolution: Evolution | None = getattr(plan, "evolution", None)
    if evolution is None or not evolution.may_redefine:
        return False
    return evolution.action == "replace" or bool(getattr(plan, "misfits", frozenset()))


def version_columns(
    db: Database, plan: TablePlan, live: sa.Table | None, file_types: dict[str, ColumnType]
) -> list[sa.Column[Any]]:
    """The columns of the table a fullload's new version is loaded into.

    A table the load defines (`redefines`) gets the file's columns with `file_types` (inferred
    types, or text); otherwise the live table's columns and types, text ones unbounded, columns
    the table's policy widens to text, and the columns ``add_columns`` adds; then the metadata.
    """
    adapter = db.adapter
    widen = set(getattr(plan, "widen", ()))
    columns: list[sa.Column[Any]] = []
    if live is None or redefines(plan):
        for name in plan.columns:
            wanted = file_types.get(name, UNBOUNDED_TEXT)
            if wanted.kind is ColumnKind.TEXT:
                wanted = UNBOUNDED_TEXT
            columns.append(sa.Column(name, adapter.column_type(wanted), nullable=True))
        return [*columns, *metadata_columns()]
    for name in data_columns(live):
        type_ = live.c[name].type
        if name in widen or kind_of(type_) is ColumnKind.TEXT:
            type_ = adapter.column_type(UNBOUNDED_TEXT)
        columns.append(sa.Column(name, type_, nullable=True))
    evolution: Evolution | None = getattr(plan, "evolution", None)
    for name in evolution.add if evolution is not None and evolution.action == "add_columns" else ():
        if name not in live.c:
            wanted = file_types.get(name, UNBOUNDED_TEXT)
            columns.append(sa.Column(name, adapter.column_type(wanted), nullable=True))
    return [*columns, *metadata_columns()]


def prepare_append(
    conn: Connection, db: Database, plan: TablePlan, live: sa.Table, file_types: dict[str, ColumnType]
) -> tuple[sa.Table, tuple[str, ...]]:
    """Inside an append's transaction: the live table's DDL for this file, then its definition.

    ``add_columns`` adds the file's new columns; ``type_mismatch: widen_to_text`` turns the
    listed columns into text, every stored value written back as its file had it. Returns the
    live table and the columns added.
    """
    changed = False
    for name in getattr(plan, "widen", ()):
        if name in live.c and kind_of(live.c[name].type) is not ColumnKind.TEXT:
            using = rendered_values(conn, db, live, name)
            db.adapter.retype_column(conn, live, name, db.adapter.column_type(UNBOUNDED_TEXT), using)
            live = _reflect_live(conn, db, plan.table)
            changed = True
    evolution: Evolution | None = getattr(plan, "evolution", None)
    added: list[str] = []
    if evolution is not None and evolution.action == "add_columns":
        for name in evolution.add:
            if name not in live.c:
                add_column(conn, live, name, db.adapter.column_type(file_types.get(name, UNBOUNDED_TEXT)))
                added.append(name)
    if changed or added:
        db.forget_table(db.catalog.data_schema, plan.table)
        live = _reflect_live(conn, db, plan.table)
    return live, tuple(added)


def final_types(
    live: sa.Table, plan: TablePlan, file_types: dict[str, ColumnType], fresh: Sequence[str]
) -> dict[str, ColumnType]:
    """How `live` stores each data column once this load is published: the SQL type, with the
    formats of the file for columns defined from it (`fresh`) and those on record otherwise."""
    inferred = file_types
    out: dict[str, ColumnType] = {}
    for name in data_columns(live):
        base = column_type_of(live.c[name].type)
        known = inferred.get(name) if name in fresh else plan.stored.get(name)
        if known is not None and known.kind is base.kind:
            base = replace(
                base, date_format=known.date_format, true_text=known.true_text, false_text=known.false_text
            )
        out[name] = base
    return out


def _reflect_live(conn: Connection, db: Database, table: str) -> sa.Table:
    live = db.reflect(conn, table, db.catalog.data_schema)
    if live is None:  # pragma: no cover - we just altered it inside this transaction
        raise SchemaMismatchError(f"table {db.catalog.data_schema}.{table} vanished during publish")
    return live
