"""SQLite: schemas are attached database files in WAL mode; stage with executemany in one transaction.

Schemas are attached files next to the main one (``refdata.ref.db``), in WAL mode. Rollback-journal
mode would make a transaction atomic across the attached files, but its per-file SHARED/EXCLUSIVE
locks deadlock between a committing writer and a reader that holds one file and waits for another
(seen with two daemons on one database). In WAL mode readers never block writers. What WAL gives
up is atomicity *across* files on a crash: SQLite commits attached files one after the other, so
``bkp`` is attached before ``ref`` and commits first; a crash in between leaves at worst an extra
backup version of the unchanged live rows, never new live rows without their backup. The data, its
tracking row and its audit events all live in ``ref`` and commit together.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.ext.compiler import compiles

from backend import faults
from backend.db.adapter import (
    UNKNOWN_FINGERPRINT,
    BaseAdapter,
    Swap,
    decimal_precision,
    version_name,
)
from backend.db.expressions import render_boolean
from backend.masking import mask_value, sha256_hex
from backend.models import ColumnKind, ColumnType

if TYPE_CHECKING:
    from backend.config import Settings
    from backend.db.schema import Catalog


#: Significant digits a SQLite REAL (NUMERIC affinity) keeps exactly.
_SQLITE_REAL_DIGITS = 15


#: Date formats SQLite can store as written (SQLAlchemy's Date/DateTime read them back as is).
_SQLITE_NATIVE_FORMATS = frozenset({"%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"})


#: Column names SQLite would refuse or misread: none that our normalised names can spell. A
#: declared ``rowid``, ``oid`` or ``_rowid_`` column is accepted and only hides the integer rowid
#: behind it, which the product never reads (the stage numbers rows by an INTEGER PRIMARY KEY,
#: which stays the rowid whatever the other columns are called); renaming them would instead
#: break the tables earlier releases loaded with such columns.
SQLITE_RESERVED_COLUMNS: frozenset[str] = frozenset()


_SQLITE_T_FORMATS = frozenset({"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"})


class ExactDecimal(sa.Numeric):  # type: ignore[type-arg]
    """SQLite: a decimal of more than 15 significant digits, stored as its exact text.

    The declared type ``DECIMAL_TEXT(p, s)`` has TEXT affinity, so SQLite keeps the checked text
    as written instead of turning it into a REAL (which keeps 15 digits); values read back are
    `Decimal`s of that text.
    """

    __visit_name__ = "DECIMAL_TEXT"
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        return lambda v: None if v is None else (v if isinstance(v, str) else format(v, "f"))

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        return lambda v: None if v is None else Decimal(v if isinstance(v, str) else repr(v))


@compiles(ExactDecimal)
def _compile_exact_decimal(type_: ExactDecimal, compiler: Any, **kw: Any) -> str:
    return f"DECIMAL_TEXT({type_.precision}, {type_.scale})"


class SQLiteAdapter(BaseAdapter):
    name = "sqlite"
    driver_module = "sqlite3"
    max_identifier_length = 128
    reserved_column_names = SQLITE_RESERVED_COLUMNS
    # `_ExecuteMany.arrow`: Arrow's parse, to_numpy().tolist() and the vectorised statistics
    # take 6.4 s of the 100 MB fullload where the csv module and per-row counting take 7.4 s.
    arrow_native = True

    def create_engine(self, url: URL, settings: Settings) -> Engine:
        database = url.database or ""
        in_memory = _sqlite_in_memory(url)
        if not in_memory:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Backup schema first: it is committed first (see the module docstring).
        schemas = (settings.backup_schema, settings.data_schema)
        engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"timeout": 60, "check_same_thread": False},
            # One shared connection for :memory: so every session sees the same attached files.
            poolclass=sa.pool.StaticPool if in_memory else sa.pool.QueuePool,
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Hand transaction control to SQLAlchemy's begin event (pysqlite's own is broken for DDL).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            for schema in schemas:
                target = ":memory:" if in_memory else str(Path(database).with_suffix(f".{schema}.db"))
                cur.execute("ATTACH DATABASE ? AS " + _sqlite_quote(schema), (target,))
            cur.execute("PRAGMA busy_timeout = 60000")
            dbapi_conn.create_function("refdata_strptime", 3, _sqlite_strptime, deterministic=True)
            dbapi_conn.create_function("refdata_strftime", 2, _sqlite_strftime, deterministic=True)
            dbapi_conn.create_function("refdata_sha256", 1, sha256_hex, deterministic=True)
            dbapi_conn.create_function("refdata_mask", 1, mask_value, deterministic=True)
            if not in_memory:
                for schema in ("main", *schemas):
                    quoted = _sqlite_quote(schema)
                    if cur.execute(f"PRAGMA {quoted}.journal_mode").fetchone()[0].lower() != "wal":
                        cur.execute(f"PRAGMA {quoted}.journal_mode = WAL")
                    # FULL: a commit is on disk before the file is moved to processed/.
                    cur.execute(f"PRAGMA {quoted}.synchronous = FULL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        # Reflection must know our exact-decimal columns as decimals (on this engine only).
        engine.dialect.ischema_names = {**engine.dialect.ischema_names, "DECIMAL_TEXT": ExactDecimal}  # type: ignore[attr-defined]
        return engine

    def column_type(self, column_type: ColumnType) -> sa.types.TypeEngine[Any]:
        # NUMERIC affinity keeps 15 significant digits (a REAL); longer decimals stay exact text.
        if column_type.kind is ColumnKind.DECIMAL and decimal_precision(column_type) > _SQLITE_REAL_DIGITS:
            return ExactDecimal(decimal_precision(column_type), column_type.scale)
        return super().column_type(column_type)

    def ensure_schema(self, conn: Connection, schema: str) -> None:
        """Schemas are attached files, attached on connect; nothing to create."""

    def table_fingerprint(self, conn: Connection, schema: str, name: str) -> Hashable:
        # The CREATE TABLE text, which ALTER TABLE rewrites.
        master = f"{conn.dialect.identifier_preparer.quote_schema(schema)}.sqlite_master"
        sql = conn.execute(
            sa.text(f"SELECT sql FROM {master} WHERE type = 'table' AND name = :name"),  # noqa: S608
            {"name": name},
        ).scalar()
        # No exact match may still be the same table under another case (SQLite compares
        # names case-insensitively): let the full reflection decide.
        return sql if sql is not None else UNKNOWN_FINGERPRINT

    def widen_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any]
    ) -> None:
        """SQLite does not enforce declared lengths; nothing to widen."""

    def cast_text(self, value: Any, target: sa.types.TypeEngine[Any], column_type: ColumnType | None) -> Any:
        # SQLite keeps dates as text in SQLAlchemy's ISO layout; a CAST would give them numeric
        # affinity and turn "2024-01-31" into 2024. A Python function registered on connect
        # rewrites them into that layout instead.
        date_format = column_type.date_format if column_type is not None else None
        if isinstance(target, ExactDecimal):
            return value  # checked text, stored as written
        if isinstance(target, (sa.Date, sa.DateTime)):
            if not date_format or date_format in _SQLITE_NATIVE_FORMATS:
                # Already in the layout SQLAlchemy reads back: no per-value Python call.
                return value
            if date_format in _SQLITE_T_FORMATS:
                # ISO with a "T": only the separator differs. A Python call per value cost 28 s
                # per million rows (bench/RESULTS.md); the type tracker has checked every value.
                return sa.func.replace(sa.func.trim(value), "T", " ")
            return self.parse_date(value, target, date_format)
        return super().cast_text(value, target, column_type)

    def parse_date(self, value: Any, target: sa.types.TypeEngine[Any], date_format: str) -> Any:
        """A Python function registered on connect rewrites the date into SQLAlchemy's ISO layout."""
        kind = "datetime" if isinstance(target, sa.DateTime) else "date"
        return sa.func.refdata_strptime(value, date_format, kind)

    def protect_text(self, value: Any, action: str) -> Any:
        return sa.func.refdata_sha256(value) if action == "hash" else sa.func.refdata_mask(value)

    def render_text(self, value: Any, column_type: ColumnType) -> Any:
        kind = column_type.kind
        if kind is ColumnKind.BOOLEAN:
            return render_boolean(value, column_type)
        if kind is ColumnKind.DECIMAL and column_type.precision <= _SQLITE_REAL_DIGITS:
            # The value is a REAL (or an INTEGER); printf gives the column's decimal places back.
            return sa.func.printf(f"%.{column_type.scale}f", value)
        if kind in (ColumnKind.DATE, ColumnKind.DATETIME):
            from backend.detection.types import DEFAULT_FORMATS

            return sa.func.refdata_strftime(value, column_type.date_format or DEFAULT_FORMATS[kind])
        return sa.cast(value, sa.Text())

    def retype_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any], using: Any
    ) -> None:
        """SQLite has no ALTER COLUMN: the table is rebuilt under its name, indexes included."""
        preparer = conn.dialect.identifier_preparer
        scratch = f"{table.name}__retype"
        new = sa.Table(
            scratch,
            sa.MetaData(),
            *(
                sa.Column(c.name, type_ if c.name == column else c.type, nullable=c.nullable)
                for c in table.columns
            ),
            schema=table.schema,
        )
        new.create(conn)
        names = [c.name for c in table.columns]
        conn.execute(
            sa.insert(new).from_select(
                names, sa.select(*(using.label(n) if n == column else table.c[n] for n in names))
            )
        )
        indexes = [(ix.name, [c.name for c in ix.columns], bool(ix.unique)) for ix in table.indexes]
        table.drop(conn)
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.format_table(new)} RENAME TO {preparer.quote(table.name)}"
        )
        renamed = sa.Table(table.name, sa.MetaData(), *(c._copy() for c in new.columns), schema=table.schema)
        for name, cols, unique in indexes:
            if name:
                sa.Index(name, *(renamed.c[c] for c in cols), unique=unique).create(conn)

    def version_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        # In the data schema's file: a rename swaps it in, and renames do not cross files.
        return catalog.data_schema, version_name(table, version, self.max_identifier_length)

    def current_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        return catalog.data_schema, table

    def kept_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        return self.version_place(catalog, table, version)

    def set_aside(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int
    ) -> None:
        # SQLite keeps a version where it was loaded (`kept_place` is `version_place`): it stays
        # a table of its own, detached, until retention drops it.
        return None

    def swap_versions(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int, old: int | None
    ) -> Swap:
        """Two renames in the publish transaction: ``t`` -> ``t__v<old>``, ``t__v<new>`` -> ``t``.

        legacy_alter_table keeps SQLite (3.26+) from rewriting views that name ``t`` to follow the
        renamed old table: a view on ``ref.t`` must show the new rows.
        """
        preparer = conn.dialect.identifier_preparer
        schema = preparer.quote_schema(catalog.data_schema)
        conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
        try:
            if old is not None:
                kept = self.kept_place(catalog, table, old)[1]
                conn.exec_driver_sql(
                    f"ALTER TABLE {schema}.{preparer.quote(table)} RENAME TO {preparer.quote(kept)}"
                )
            faults.hit("publish.swap")
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(new)} RENAME TO {preparer.quote(table)}"
            )
        finally:
            conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")
        return Swap()

    def begin_write(self, conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that upgrades later can
        # fail with SQLITE_BUSY without waiting, whatever busy_timeout says.
        conn.execution_options(sqlite_begin="IMMEDIATE")
        conn.begin()
        conn.execution_options(sqlite_begin="DEFERRED")


def _sqlite_strptime(value: str | None, date_format: str, kind: str) -> str | None:
    """SQLite function: a date in `date_format` -> SQLAlchemy's ISO text layout (None stays None)."""
    if value is None:
        return None
    parsed = datetime.strptime(value.strip(), date_format)
    return parsed.date().isoformat() if kind == "date" else parsed.isoformat(sep=" ", timespec="microseconds")


def _sqlite_strftime(value: str | None, date_format: str) -> str | None:
    """SQLite function: a stored ISO date or datetime written back in `date_format`."""
    if value is None:
        return None
    text = value.strip()
    parsed = datetime.fromisoformat(text) if len(text) > 10 else datetime.fromisoformat(text + "T00:00:00")
    return parsed.strftime(date_format)


def _sqlite_in_memory(url: URL) -> bool:
    """An in-memory SQLite database: one shared connection (StaticPool) holds all of it."""
    return (url.database or "") in ("", ":memory:")


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
