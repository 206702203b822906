"""Schema analysis and evolution: compare a file's columns with a table, decide, and apply the DDL.

Analysis (before staging): match percentage, missing and extra columns, columns that look
renamed (equal once case, spaces and underscores are ignored) and, for a table that does not
exist yet, the existing table that matches best (above 70 %).

Policies (per table and load type, ``schema_evolution`` in ``config/tables/<table>.yaml``):

- ``fail`` (default): any difference refuses the file.
- ``add_columns``: extra file columns are added to the table (nullable); table columns the
  file lacks are loaded as NULL. A column that looks renamed refuses the file instead: adding
  ``countrycode`` next to an emptied ``country_code`` would break every reader silently.
- ``ignore_extra``: extra file columns are not loaded; a missing table column still fails.
- ``replace`` (fullload only): the table is redefined from the file when its column names differ
  or a column's values no longer fit its type. The replaced version is kept as for every
  fullload, with its own columns.

Every version is a table of its own (`backend.load.versions`), so an old version keeps the
definition it was loaded under; `restore` brings a version back into the current definition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.models import ColumnKind, ColumnType, LoadType
from backend.naming import METADATA_COLUMNS
from backend.policies import SchemaEvolution

#: A table that does not exist yet is compared with the others; above this it is reported.
BEST_MATCH_PERCENT = 70.0
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_BACKUP_COLUMNS = ("_bkp_version", "_bkp_load_id", "_bkp_at")


def loose_name(name: str) -> str:
    """`name` without case, spaces, underscores and punctuation: ``Country_Code`` -> ``countrycode``."""
    return _NOT_ALNUM.sub("", name.casefold())


@dataclass(frozen=True, slots=True)
class SchemaReport:
    """How a file's columns compare with a table's."""

    table: str
    exists: bool
    match_percent: float
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    #: (file column, table column) pairs that differ only in case, spacing or underscores.
    renamed: tuple[tuple[str, str], ...] = ()
    #: For a table that does not exist: the best other table and its match percentage.
    best_match: tuple[str, float] | None = None

    @property
    def differs(self) -> bool:
        return bool(self.missing or self.extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "exists": self.exists,
            "match_percent": self.match_percent,
            "missing": list(self.missing),
            "extra": list(self.extra),
            "renamed": [{"file": f, "table": t} for f, t in self.renamed],
            "best_match": (
                {"table": self.best_match[0], "match_percent": self.best_match[1]}
                if self.best_match
                else None
            ),
        }

    def describe(self) -> str:
        """One line for messages and the CLI."""
        if not self.exists:
            text = f"table {self.table} does not exist yet"
            if self.best_match:
                text += f"; table {self.best_match[0]} matches {self.best_match[1]}% of the columns"
            return text
        text = (
            f"{self.match_percent}% match; missing from file: {', '.join(self.missing) or 'none'}; "
            f"not in table: {', '.join(self.extra) or 'none'}"
        )
        if self.renamed:
            text += "; looks renamed: " + ", ".join(f"{f} -> {t}" for f, t in self.renamed)
        return text


def match_percent(existing: Sequence[str], incoming: Sequence[str]) -> float:
    """Shared columns over all columns of both sides, in percent."""
    have, want = set(existing), set(incoming)
    union = have | want
    return round(100.0 * len(have & want) / len(union), 1) if union else 100.0


def compare_columns(table: str, existing: Sequence[str], incoming: Sequence[str]) -> SchemaReport:
    """Compare the columns of an existing table with a file's (both normalised names)."""
    want, have = set(incoming), set(existing)
    missing = tuple(c for c in existing if c not in want)
    extra = tuple(c for c in incoming if c not in have)
    by_loose = {loose_name(c): c for c in missing}
    renamed = tuple((e, by_loose[loose_name(e)]) for e in extra if loose_name(e) in by_loose)
    return SchemaReport(table, True, match_percent(existing, incoming), missing, extra, renamed)


def analyze_schema(
    conn: Connection,
    db: Database,
    table: str,
    columns: Sequence[str],
    existing: sa.Table | None | Literal["reflect"] = "reflect",
) -> SchemaReport:
    """Compare `columns` with ``ref.<table>``, or find the best-matching table when it does not exist.

    Args:
        existing: the table's definition as the caller just reflected it in this transaction
            (None: it does not exist); by default reflected here.
    """
    if isinstance(existing, str):
        existing = db.reflect(conn, table, db.catalog.data_schema)
    if existing is not None:
        return compare_columns(table, data_columns_of(existing), columns)
    return SchemaReport(
        table, False, 0.0, extra=tuple(columns), best_match=best_matching_table(conn, db, columns)
    )


def best_matching_table(conn: Connection, db: Database, columns: Sequence[str]) -> tuple[str, float] | None:
    """The data-schema table whose columns match `columns` best, when above BEST_MATCH_PERCENT."""
    own = {t.name.lower() for t in db.catalog.metadata.tables.values()}
    skip = set(METADATA_COLUMNS)
    best: tuple[str, float] | None = None
    found = sa.inspect(conn).get_multi_columns(schema=db.catalog.data_schema)
    for (_schema, name), cols in sorted(found.items(), key=lambda item: item[0][1]):
        if name.lower() in own:
            continue
        percent = match_percent([c["name"] for c in cols if c["name"] not in skip], columns)
        if percent > BEST_MATCH_PERCENT and (best is None or percent > best[1]):
            best = (name, percent)
    return best


def data_columns_of(table: sa.Table) -> list[str]:
    skip = set(METADATA_COLUMNS) | set(_BACKUP_COLUMNS)
    return [c.name for c in table.columns if c.name not in skip]


@dataclass(frozen=True, slots=True)
class Evolution:
    """The decision about a file whose columns differ from its table, and why."""

    policy: SchemaEvolution
    #: create | none | add_columns | ignore_extra | replace | fail
    action: str
    reason: str
    #: Columns the load adds to the table.
    add: tuple[str, ...] = ()
    #: File columns that are not loaded.
    ignore: tuple[str, ...] = ()
    #: Table columns the file lacks (NULL in the new rows).
    null_filled: tuple[str, ...] = ()
    #: The table may be redefined at publish time (policy `replace` on a fullload).
    may_redefine: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.value,
            "action": self.action,
            "reason": self.reason,
            "add": list(self.add),
            "ignore": list(self.ignore),
            "null_filled": list(self.null_filled),
        }


def decide(report: SchemaReport, policy: SchemaEvolution, load_type: LoadType) -> Evolution:
    """What the load does about the differences in `report` under `policy`."""
    may_redefine = policy is SchemaEvolution.REPLACE and load_type is LoadType.FULLLOAD
    if not report.exists:
        return Evolution(policy, "create", "new table", may_redefine=may_redefine)
    if not report.differs:
        return Evolution(policy, "none", "columns match the table", may_redefine=may_redefine)
    what = report.describe()
    if policy is SchemaEvolution.REPLACE:
        if load_type is not LoadType.FULLLOAD:
            return Evolution(
                policy, "fail", f"columns differ ({what}); only a fullload may redefine the table"
            )
        return Evolution(
            policy, "replace", f"fullload redefines the table ({what})", report.extra, (), (), True
        )
    if policy is SchemaEvolution.ADD_COLUMNS:
        if report.renamed:
            return Evolution(
                policy,
                "fail",
                f"columns differ ({what}); renamed-looking columns are not added as new ones: "
                "rename them in the file or let a replace fullload redefine the table",
            )
        return Evolution(
            policy,
            "add_columns",
            f"adding {', '.join(report.extra) or 'no columns'}"
            + (f"; NULL for {', '.join(report.missing)}" if report.missing else ""),
            add=report.extra,
            null_filled=report.missing,
        )
    if policy is SchemaEvolution.IGNORE_EXTRA:
        if report.missing:
            return Evolution(
                policy,
                "fail",
                f"columns differ ({what}); ignore_extra tolerates extra columns only, "
                f"the file lacks {', '.join(report.missing)}",
            )
        return Evolution(
            policy, "ignore_extra", f"not loading {', '.join(report.extra)}", ignore=report.extra
        )
    return Evolution(policy, "fail", f"columns do not match table {report.table} ({what})")


def kind_of(type_: sa.types.TypeEngine[Any]) -> ColumnKind:
    """The logical kind of a reflected column type."""
    if isinstance(type_, sa.Boolean):
        return ColumnKind.BOOLEAN
    if isinstance(type_, sa.BigInteger):
        return ColumnKind.BIGINT
    if isinstance(type_, sa.Integer):
        return ColumnKind.INTEGER
    if isinstance(type_, sa.Numeric):
        return ColumnKind.DECIMAL
    if isinstance(type_, sa.DateTime):
        return ColumnKind.DATETIME
    if isinstance(type_, sa.Date):
        return ColumnKind.DATE
    return ColumnKind.TEXT


def column_type_of(type_: sa.types.TypeEngine[Any]) -> ColumnType:
    """A reflected SQL type as a logical column type (no formats: those are recorded per load)."""
    kind = kind_of(type_)
    if kind is ColumnKind.DECIMAL:
        precision = getattr(type_, "precision", None) or 38
        return ColumnType(kind, precision=precision, scale=getattr(type_, "scale", None) or 0)
    if kind is ColumnKind.TEXT:
        return ColumnType(kind, length=getattr(type_, "length", None) or 0)
    return ColumnType(kind)


def fits(live_type: sa.types.TypeEngine[Any], wanted: ColumnType) -> bool:
    """Whether values inferred as `wanted` can go into a column of `live_type` unchanged."""
    have = kind_of(live_type)
    kind = wanted.kind
    if have is ColumnKind.TEXT or have is kind:
        if have is ColumnKind.DECIMAL and kind is ColumnKind.DECIMAL:
            precision = getattr(live_type, "precision", None) or 38
            scale = getattr(live_type, "scale", None) or 0
            return wanted.scale <= scale and wanted.precision - wanted.scale <= precision - scale
        return True
    widenings = {
        ColumnKind.INTEGER: (ColumnKind.BIGINT, ColumnKind.DECIMAL),
        ColumnKind.BIGINT: (ColumnKind.DECIMAL,),
        ColumnKind.DATE: (ColumnKind.DATETIME,),
    }
    return have in widenings.get(kind, ())


def add_column(conn: Connection, table: sa.Table, name: str, type_: sa.types.TypeEngine[Any]) -> None:
    """``ALTER TABLE ... ADD <name> <type> NULL`` (the same text works on all three dialects)."""
    preparer = conn.dialect.identifier_preparer
    conn.exec_driver_sql(
        f"ALTER TABLE {preparer.format_table(table)} ADD {preparer.quote(name)} "
        f"{type_.compile(dialect=conn.dialect)} NULL"
    )


def rendered_values(conn: Connection, db: Database, table: sa.Table, column: str) -> Any:
    """SQL giving `column`'s stored values back as the text of their files.

    Each row is written in the format its own load recorded (a version kept in bkp may predate a
    change of date format), found through its ``_load_id``; the expression names columns
    unqualified, for ``ALTER ... USING``, ``UPDATE`` and a rebuild's ``INSERT ... SELECT``.
    """
    from backend import tracking

    sql_type = table.c[column].type
    value = sa.column(column, type_=sql_type)
    base = column_type_of(sql_type)
    t = db.catalog.tracking
    loads = sa.select(sa.distinct(table.c._load_id)).scalar_subquery()
    recorded = conn.execute(sa.select(t.c.id, t.c.column_types).where(t.c.id.in_(loads))).all()
    by_type: dict[ColumnType, list[int]] = {}
    for load_id, text in recorded:
        known = tracking.decode_types(text).get(column)
        if known is not None and known.kind is base.kind:
            key = ColumnType(
                base.kind, 0, base.precision, base.scale, known.date_format, known.true_text, known.false_text
            )
        else:
            key = base
        by_type.setdefault(key, []).append(int(load_id))
    if len(by_type) <= 1:
        return db.adapter.render_text(value, next(iter(by_type), base))
    load_id = sa.column("_load_id", type_=sa.BigInteger)
    return sa.case(
        *((load_id.in_(ids), db.adapter.render_text(value, ct)) for ct, ids in by_type.items()),
        else_=db.adapter.render_text(value, base),
    )


def definition_of(table: sa.Table) -> list[dict[str, str]]:
    """Column names and SQL types, for the audit trail of a redefinition."""
    return [{"name": c.name, "type": str(c.type)} for c in table.columns]


def schema_report_for(db: Database, table: str, columns: Sequence[str]) -> SchemaReport:
    """`analyze_schema` on its own read connection (for ``detect --table``)."""
    from backend.naming import normalize_identifier

    name = normalize_identifier(table) or table
    with db.read() as conn:
        return analyze_schema(conn, db, name, columns)
