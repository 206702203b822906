"""Decide the target table: its name, columns, and whether (and how) the file fits an existing table.

`plan_table` runs before staging and only reads: it compares the file's columns with the table
(`evolve.analyze_schema`) and applies the table's schema-evolution policy (`evolve.decide`).
`prepare_live` and `evolve_live` run inside the publish transaction and make the DDL happen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

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
    align_backup,
    analyze_schema,
    column_type_of,
    decide,
    definition_of,
    fits,
    kind_of,
    rendered_values,
)
from backend.models import ColumnKind, ColumnType, LoadType, TablePlan
from backend.naming import METADATA_COLUMNS
from backend.policies import TablePolicy

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
) -> SchemaPlan:
    """Compare the file's columns with ``ref.<table>`` (if it exists) and decide what the load does.

    Raises:
        SchemaMismatchError: the columns differ and the policy does not allow it; ``details`` hold
            ``schema_report`` and ``evolution`` for the tracking row.
    """
    policy = policy or TablePolicy(table=table)
    report = analyze_schema(conn, db, table, columns)
    evolution = decide(report, policy.evolution_for(load_type), load_type)
    if evolution.action == "fail":
        raise SchemaMismatchError(
            evolution.reason
            + (f" (schema_evolution: {evolution.policy.value}; see config/tables/{table}.yaml)"),
            details={"schema_report": report.to_dict(), "evolution": evolution.to_dict()},
        )
    loaded = tuple(c for c in columns if c not in set(evolution.ignore))
    live = db.reflect(conn, table, db.catalog.data_schema) if report.exists else None
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


def target_definition(db: Database, plan: TablePlan, types: Sequence[ColumnType]) -> sa.Table:
    """The `ref.<table>` definition for a first load: the file's columns, then metadata."""
    adapter = db.adapter
    by_name = types_by_name(plan, types)
    return sa.Table(
        plan.table,
        sa.MetaData(),
        *(sa.Column(name, adapter.column_type(by_name[name]), nullable=True) for name in plan.columns),
        *metadata_columns(),
        schema=db.catalog.data_schema,
    )


def backup_definition(db: Database, live: sa.Table) -> sa.Table:
    """The `bkp.<table>` definition: version columns, then every column of the live table.

    Indexed on the version: every fullload asks for the newest version, and restore, export and
    retention pick one; without the index each of them reads every version ever kept.
    """
    table = sa.Table(
        live.name,
        sa.MetaData(),
        sa.Column("_bkp_version", sa.Integer, nullable=False),
        sa.Column("_bkp_load_id", sa.BigInteger, nullable=False),
        sa.Column("_bkp_at", TIMESTAMP, nullable=False),
        *(sa.Column(c.name, c.type, nullable=True) for c in live.columns),
        schema=db.catalog.backup_schema,
    )
    sa.Index(backup_index_name(live.name), table.c._bkp_version)
    return table


def backup_index_name(table: str) -> str:
    """The version index of bkp.<table>: unique per schema, within every dialect's identifier length."""
    digest = hashlib.sha256(table.encode("utf-8")).hexdigest()[:10]
    return f"ix_{table[:30]}_{digest}_bkp_version"


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
) -> tuple[sa.Table, bool]:
    """Inside the publish transaction: create `ref.<table>` on a first load, else lock and widen it.

    Returns the live table's current definition, and whether this call created it.
    """
    schema = db.catalog.data_schema
    live = db.reflect(conn, plan.table, schema)
    if live is None:
        live = target_definition(db, plan, column_types)
        live.create(conn)
        db.forget_table(schema, plan.table)
        return live, True
    db.adapter.lock_for_publish(conn, live)
    evolution: Evolution | None = getattr(plan, "evolution", None)
    if evolution is not None and evolution.action == "replace":
        return live, False  # redefined by evolve_live once the old rows are in bkp
    changed = False
    for name in getattr(plan, "widen", ()):
        # type_mismatch: widen_to_text. The stored values become the text their files had.
        if name in live.c and kind_of(live.c[name].type) is not ColumnKind.TEXT:
            using = rendered_values(conn, db, live, name)
            db.adapter.retype_column(conn, live, name, db.adapter.text_type(1 << 30), using)
            # The next column is changed on the new definition (SQLite rebuilds the whole table).
            live = _reflect_live(conn, db, plan.table)
            changed = True
    for name, wanted in types_by_name(plan, column_types).items():
        if name in live.c and name in plan.columns and needs_widening(live.c[name], wanted):
            db.adapter.widen_column(conn, live, name, db.adapter.text_type(wanted.length))
            changed = True
    if changed:
        # No forget_table here: the fingerprint sees a real change (a new type or modifier), and
        # where widening is a no-op (SQLite lengths) the cached definition stays valid.
        refreshed = db.reflect(conn, plan.table, schema)
        if refreshed is not None:
            live = refreshed
    return live, False


def evolve_live(
    conn: Connection,
    db: Database,
    plan: TablePlan,
    live: sa.Table,
    column_types: Sequence[ColumnType],
    tracking_id: int,
) -> tuple[sa.Table, tuple[str, ...]]:
    """Inside the publish transaction, after a fullload's old rows are in bkp: apply the evolution.

    ``add_columns`` adds the new columns to ref and bkp; ``replace`` drops the live table and
    creates it from the file when its column names differ or a column's values no longer fit its
    type. Writes a ``schema_evolved`` audit event in the same transaction. Returns the live table
    and the columns this call (re)defined from the file's types.
    """
    evolution: Evolution | None = getattr(plan, "evolution", None)
    if evolution is None:
        return live, ()
    by_name = types_by_name(plan, column_types)
    if evolution.action == "add_columns":
        added = [c for c in evolution.add if c not in live.c]
        for name in added:
            add_column(conn, live, name, db.adapter.column_type(by_name[name]))
        if not added:
            return live, ()
        db.forget_table(db.catalog.data_schema, plan.table)
        live = _reflect_live(conn, db, plan.table)
        _align_existing_backup(conn, db, live)
        tracking.add_event(conn, db, tracking_id, "schema_evolved", {"action": "add_columns", "added": added})
        return live, tuple(added)
    if not evolution.may_redefine:
        return live, ()
    unfit: frozenset[str] = getattr(plan, "misfits", frozenset())
    misfits = [
        c for c in plan.columns if c in live.c and (c in unfit or not fits(live.c[c].type, by_name[c]))
    ]
    if evolution.action != "replace" and not misfits:
        return live, ()
    previous = definition_of(live)
    live.drop(conn)
    live = target_definition(db, plan, column_types)
    live.create(conn)
    db.forget_table(db.catalog.data_schema, plan.table)
    _align_existing_backup(conn, db, live)
    tracking.add_event(
        conn,
        db,
        tracking_id,
        "schema_evolved",
        {
            "action": "replace",
            "reason": evolution.reason if evolution.action == "replace" else f"types changed: {misfits}",
            "previous_definition": previous,
            "definition": definition_of(live),
        },
    )
    return live, tuple(plan.columns)


def final_types(
    live: sa.Table, plan: TablePlan, column_types: Sequence[ColumnType], fresh: Sequence[str]
) -> dict[str, ColumnType]:
    """How `live` stores each data column once this load is published: the SQL type, with the
    formats of the file for columns defined from it (`fresh`) and those on record otherwise."""
    inferred = types_by_name(plan, column_types)
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


def _align_existing_backup(conn: Connection, db: Database, live: sa.Table) -> None:
    backup = db.reflect(conn, live.name, db.catalog.backup_schema)
    if backup is not None:
        align_backup(conn, db, backup, live)
