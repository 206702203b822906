"""The per-database seam: one small interface, one module per database beside it.

Everything else (DDL, publish statements, tracking) is SQLAlchemy Core and compiles for all
three. An adapter answers what differs: how to connect, what a text or typed column is, how to
stage a batch of rows fast (and number them), how to take the publish lock, how to convert a
checked text value into a typed column and how to write it back as text. `backend/db/sqlite.py`,
`postgresql.py` and `mssql.py` implement it; `dialects.adapter_for` picks one for a URL.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import URL, Connection, Engine

from backend import faults
from backend.db.expressions import iso_castable, literal_sql
from backend.models import ColumnKind, ColumnType

if TYPE_CHECKING:
    from backend.config import Settings
    from backend.db.schema import Catalog

#: Text columns are sized to the data, rounded up to one of these widths so that a later file
#: with slightly longer values rarely needs the column widened.
_TEXT_WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4000)


#: `table_fingerprint` cannot tell: the caller reflects the table in full, uncached.
UNKNOWN_FINGERPRINT = object()


#: A batch of staged rows: the values of each row, as read.
Rows = Sequence[Sequence[str]]


#: Digits a new DECIMAL column gets at least: next month's file may hold 10.50 where this one's
#: largest value was 9.99, and refusing it for want of a digit helps nobody (15 is also what a
#: SQLite REAL keeps exactly).
MIN_DECIMAL_PRECISION = 15


def decimal_precision(column_type: ColumnType) -> int:
    """The precision a new DECIMAL column is declared with: the data's, with headroom, at most 38."""
    return min(38, max(column_type.precision, column_type.scale + 1, MIN_DECIMAL_PRECISION))


def text_width(max_length: int) -> int | None:
    """Declared width for values up to `max_length` characters; None means unbounded."""
    for width in _TEXT_WIDTHS:
        if max_length <= width:
            return width
    return None


class DialectAdapter(Protocol):
    """The per-database seam. Implementations are stateless apart from configuration."""

    name: ClassVar[str]
    #: Longest identifier the database keeps without truncating.
    max_identifier_length: ClassVar[int]
    #: Column names the database keeps for itself; a header of that name is renamed (``xmin_2``).
    reserved_column_names: ClassVar[frozenset[str]]

    def create_engine(self, url: URL, settings: Settings) -> Engine: ...

    def ensure_schema(self, conn: Connection, schema: str) -> None: ...

    def text_type(self, max_length: int) -> sa.types.TypeEngine[Any]: ...

    def column_type(self, column_type: ColumnType) -> sa.types.TypeEngine[Any]: ...

    def lock_for_publish(self, conn: Connection, table: sa.Table) -> None: ...

    def table_fingerprint(self, conn: Connection, schema: str, name: str) -> Hashable:
        """A cheap value that changes whenever the table's definition does (None: no such table,
        UNKNOWN_FINGERPRINT: cannot tell, reflect in full); see `Database.reflect`."""
        ...

    def begin_write(self, conn: Connection) -> None: ...

    def serialize_publish(self, conn: Connection, schema: str, table: str) -> None: ...

    def widen_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any]
    ) -> None: ...

    def cast_text(self, value: Any, target: sa.types.TypeEngine[Any], column_type: ColumnType | None) -> Any:
        """SQL turning a staged text value, already checked by `backend.load.convert`, into `target`."""
        ...

    def is_driver_error(self, exc: BaseException) -> bool:
        """Whether `exc` comes from the database driver itself (bulk paths call it directly)."""
        ...

    def protect_text(self, value: Any, action: str) -> Any:
        """SQL for the ``hash`` (SHA-256 hex of the UTF-8 text) or ``mask`` (``****1234``) of a text
        value; empty and NULL stay as they are. All three databases give the same text."""
        ...

    def procedure_statements(self, conn: Connection, schema: str, name: str) -> ProcedureStatements | None:
        """The statements that find and run validation procedure ``schema.name``, where the
        database has stored procedures we call (SQL Server); None elsewhere."""
        ...

    def render_text(self, value: Any, column_type: ColumnType) -> Any:
        """SQL writing a stored value of `column_type` back as the text its file had."""
        ...

    def retype_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any], using: Any
    ) -> None:
        """Change `column` to `type_`, every row's new value given by the SQL expression `using`."""
        ...

    #: A new version is filled in committed steps (and cleaned up after a crash) rather than in
    #: the publish transaction itself: SQLite admits one writer, SQL Server bulk loads commit.
    commits_while_loading: ClassVar[bool]

    #: Big files are read with the Arrow reader for this database (`ARROW_MIN_BYTES`): its sink
    #: takes Arrow arrays without a Python object per value (PostgreSQL's COPY), or the arrays'
    #: conversion plus the columnar checks and statistics beat the csv module (SQLite's
    #: executemany, measured: bench/RESULTS.md, sixth round). Unmeasured drivers stay off.
    arrow_native: ClassVar[bool]

    #: A text column's width counts UTF-16 code units (SQL Server's NVARCHAR(n): a character
    #: beyond U+FFFF takes two), not characters: `load.measure` sizes columns in these units.
    utf16_widths: ClassVar[bool]

    def version_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """(schema, name) of the table a new version of `table` is loaded into."""
        ...

    def current_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """Where that version's rows are once it is current."""
        ...

    def kept_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """Where they are once a newer version has replaced it."""
        ...

    def prepare_version(self, conn: Connection, new: sa.Table, version: int) -> None:
        """Whatever a freshly created version table needs before it can become current."""
        ...

    def swap_versions(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int, old: int | None
    ) -> Swap:
        """Inside the publish transaction: make `new` (version `version`) the rows of ``ref.<table>``
        and move the current version `old` (if any) to its kept place, as metadata only."""
        ...

    def set_aside(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int
    ) -> None:
        """Move the filled version `new` to its kept place without making it current (a file
        older than the table's current one that arrived late)."""
        ...

    def in_version_layout(self, conn: Connection, catalog: Catalog, table: str) -> bool:
        """Whether ``ref.<table>`` is laid out as versions (False: someone replaced it by hand)."""
        ...

    def temporary_view(self, conn: Connection, name: str, select: Any) -> str:
        """Make `select` readable under a name for the rest of this session; returns the SQL name."""
        ...

    def drop_temporary_views(self, conn: Connection, names: Sequence[str]) -> None: ...

    def add_version_column(self, conn: Connection, table: sa.Table, version: int) -> None:
        """Give a table made by an earlier release the ``_version`` column, all rows `version`."""
        ...

    def adopt_current(self, conn: Connection, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """Turn an earlier release's plain ``ref.<table>`` into current version `version`; its place."""
        ...

    def writer(
        self, conn: Connection, table: sa.Table, spec: WriteSpec
    ) -> contextlib.AbstractContextManager[Sink]:
        """A `Sink` writing a load's rows into `table`, converted to the columns' types;
        everything is written when the context exits normally."""
        ...


class Sink(Protocol):
    """Where a load's batches go: rows numbered `first`, `first` + 1, ..., values in the order of
    `WriteSpec.columns`, either as the reader's lists (which it may extend) or as Arrow arrays."""

    def rows(self, first: int, rows: Rows) -> None: ...

    def arrow(self, first: int, columns: Sequence[Any]) -> None: ...


@dataclass(frozen=True)
class Swap:
    """What a version swap did with the replaced version."""

    #: The replaced version is a partition of its table's bkp parent (PostgreSQL).
    old_attached: bool = False
    #: The bkp parent was rebuilt for a new definition: the versions it held now stand alone.
    others_detached: bool = False


@dataclass(frozen=True)
class WriteSpec:
    """What a writer sends besides the file's values: their columns, types and the row metadata."""

    columns: tuple[str, ...]
    types: Mapping[str, ColumnType]
    load_id: int
    loaded_at: datetime
    load_type: str
    version: int
    empty_as_null: bool

    @property
    def metadata_values(self) -> tuple[tuple[str, Any], ...]:
        """The metadata columns every row of this load carries (besides its ``_row_number``)."""
        return (
            ("_load_id", self.load_id),
            ("_loaded_at", self.loaded_at),
            ("_load_type", self.load_type),
            ("_version", self.version),
        )


def version_name(table: str, version: int, max_length: int) -> str:
    """The name of the table that holds version `version` of `table`."""
    from backend.naming import shorten

    name = f"{table}__v{version}"
    return shorten(name, name, max_length)


class BaseAdapter(ABC):
    """What most databases share; each adapter overrides the rest."""

    name: ClassVar[str] = "base"
    max_identifier_length: ClassVar[int] = 63
    reserved_column_names: ClassVar[frozenset[str]] = frozenset()

    def ensure_schema(self, conn: Connection, schema: str) -> None:
        inspector = sa.inspect(conn)
        if schema not in inspector.get_schema_names():
            conn.execute(sa.schema.CreateSchema(schema))

    def text_type(self, max_length: int) -> sa.types.TypeEngine[Any]:
        width = text_width(max_length)
        return sa.Text() if width is None else sa.String(width)

    def column_type(self, column_type: ColumnType) -> sa.types.TypeEngine[Any]:
        kind = column_type.kind
        if kind is ColumnKind.INTEGER:
            return sa.Integer()
        if kind is ColumnKind.BIGINT:
            return sa.BigInteger()
        if kind is ColumnKind.DECIMAL:
            return sa.Numeric(decimal_precision(column_type), column_type.scale)
        if kind is ColumnKind.BOOLEAN:
            return sa.Boolean(create_constraint=False)
        if kind is ColumnKind.DATE:
            return sa.Date()
        if kind is ColumnKind.DATETIME:
            return sa.DateTime().with_variant(mssql.DATETIME2(), "mssql")  # type: ignore[no-untyped-call]
        return self.text_type(column_type.length)

    def table_fingerprint(self, conn: Connection, schema: str, name: str) -> Hashable:
        # SQL Server: no live server here to prove a catalog query on, so always reflect in full.
        return UNKNOWN_FINGERPRINT

    def lock_for_publish(self, conn: Connection, table: sa.Table) -> None:  # noqa: B027 - a no-op by default
        """Serialise publishers of one table; readers keep seeing the committed rows."""

    def serialize_publish(self, conn: Connection, schema: str, table: str) -> None:  # noqa: B027 - no-op
        """Take a transaction-scoped lock named after the table (whether or not it exists yet).

        SQLite needs none: BEGIN IMMEDIATE already admits one writer at a time.
        """

    def begin_write(self, conn: Connection) -> None:
        conn.begin()

    #: ALTER COLUMN syntax: PostgreSQL says TYPE, SQL Server repeats the nullability.
    _alter_column = "ALTER TABLE {table} ALTER COLUMN {column} TYPE {type}"

    def widen_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any]
    ) -> None:
        preparer = conn.dialect.identifier_preparer
        conn.exec_driver_sql(
            self._alter_column.format(
                table=preparer.format_table(table),
                column=preparer.quote(column),
                type=type_.compile(dialect=conn.dialect),
            )
        )

    def cast_text(self, value: Any, target: sa.types.TypeEngine[Any], column_type: ColumnType | None) -> Any:
        """SQL turning a staged text value into `target` (text stays text).

        Every value has passed `backend.load.convert`'s exact check against `column_type` (its date
        format, its boolean spelling), so a plain CAST can neither round nor default here; ISO
        dates are a plain CAST, others go through the dialect's own date parsing.
        """
        if isinstance(target, (sa.String, sa.Text)) and not isinstance(target, sa.Enum):
            return value
        date_format = column_type.date_format if column_type is not None else None
        if isinstance(target, (sa.Date, sa.DateTime)) and date_format and not iso_castable(date_format):
            return self.parse_date(value, target, date_format)
        if isinstance(target, sa.Boolean):
            true = (column_type.true_text if column_type else None) or "true"
            false = (column_type.false_text if column_type else None) or "false"
            # The simple CASE names the value once: it may be a single positional parameter.
            return sa.case({true: sa.true(), false: sa.false()}, value=value, else_=sa.null())
        return sa.cast(value, target)

    commits_while_loading: ClassVar[bool] = True
    arrow_native: ClassVar[bool] = False
    utf16_widths: ClassVar[bool] = False

    def insert_sql(self, conn: Connection, table: sa.Table, spec: WriteSpec) -> str:
        """``INSERT ... VALUES`` with one ``?`` per file value (converted in SQL) and the row number
        last; the metadata constants are written into the statement."""
        placeholder: Any = sa.literal_column("?")
        values = []
        for name in spec.columns:
            column_type = spec.types.get(name)
            typed = column_type is not None and column_type.kind is not ColumnKind.TEXT
            value: Any = sa.func.nullif(placeholder, "") if typed or spec.empty_as_null else placeholder
            expression = self.cast_text(value, table.c[name].type, column_type)
            # A value sent as it is needs no compiling (a burst of small files paid ~1 ms a file
            # compiling "?" for each text column).
            values.append("?" if expression is placeholder else literal_sql(conn, expression))
        constants = [literal_sql(conn, sa.literal(v, table.c[k].type)) for k, v in spec.metadata_values]
        preparer = conn.dialect.identifier_preparer
        names = [*spec.columns, "_row_number", *(k for k, _ in spec.metadata_values)]
        columns = ", ".join(preparer.quote(n) for n in names)
        placeholders = ", ".join([*values, "?", *constants])
        # Names went through the dialect's quoting; the values are placeholders and our literals.
        return f"INSERT INTO {preparer.format_table(table)} ({columns}) VALUES ({placeholders})"  # noqa: S608

    @contextlib.contextmanager
    def writer(self, conn: Connection, table: sa.Table, spec: WriteSpec) -> Iterator[Sink]:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            yield _ExecuteMany(self, cursor, self.insert_sql(conn, table, spec))
        finally:
            cursor.close()

    def execute_batch(self, cursor: Any, sql: str, rows: Rows) -> None:
        cursor.executemany(sql, rows)

    def prepare_version(self, conn: Connection, new: sa.Table, version: int) -> None:  # noqa: B027
        """Nothing by default: the table is complete as created."""

    def in_version_layout(self, conn: Connection, catalog: Catalog, table: str) -> bool:
        return True

    def temporary_view(self, conn: Connection, name: str, select: Any) -> str:
        """A TEMP VIEW (PostgreSQL and SQLite let it read any schema), replaced if it exists."""
        quoted = conn.dialect.identifier_preparer.quote(name)
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {quoted}")
        conn.exec_driver_sql(f"CREATE TEMP VIEW {quoted} AS {literal_sql(conn, select)}")
        return str(quoted)

    def drop_temporary_views(self, conn: Connection, names: Sequence[str]) -> None:
        for name in names:
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {conn.dialect.identifier_preparer.quote(name)}")

    def add_version_column(self, conn: Connection, table: sa.Table, version: int) -> None:
        # A constant default: metadata only on PostgreSQL 11+ and SQL Server; SQLite too.
        conn.exec_driver_sql(
            f"ALTER TABLE {conn.dialect.identifier_preparer.format_table(table)} "
            f"ADD _version INTEGER NOT NULL DEFAULT {int(version)}"
        )

    def adopt_current(self, conn: Connection, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """The plain table already is the current version where versions swap by name."""
        return self.current_place(catalog, table, version)

    #: Top-level module of the driver (``sqlite3``, ``psycopg``, ``pyodbc``).
    driver_module: ClassVar[str] = ""

    def is_driver_error(self, exc: BaseException) -> bool:
        return bool(self.driver_module) and type(exc).__module__.split(".")[0] == self.driver_module

    def procedure_statements(self, conn: Connection, schema: str, name: str) -> ProcedureStatements | None:
        return None

    @abstractmethod
    def version_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """(schema, name) of the table a new version is loaded into."""

    @abstractmethod
    def current_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """Where that version's rows are once it is current."""

    @abstractmethod
    def kept_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """Where they are once a newer version has replaced it."""

    @abstractmethod
    def swap_versions(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int, old: int | None
    ) -> Swap:
        """Make `new` the rows of ``ref.<table>``, the current version `old` kept (metadata only)."""

    @abstractmethod
    def set_aside(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int
    ) -> None:
        """Move the filled version `new` to `kept_place` without making it current."""

    @abstractmethod
    def protect_text(self, value: Any, action: str) -> Any:
        """SQL for the hashed or masked form of a text value (empty and NULL stay)."""

    @abstractmethod
    def parse_date(self, value: Any, target: sa.types.TypeEngine[Any], date_format: str) -> Any:
        """SQL parsing `value` with strptime-style `date_format` (a non-ISO date column)."""

    @abstractmethod
    def render_text(self, value: Any, column_type: ColumnType) -> Any:
        """SQL writing a stored value of `column_type` back as the text its file had."""

    @abstractmethod
    def retype_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any], using: Any
    ) -> None:
        """Change `column` to `type_`, every row's new value given by the SQL expression `using`."""


#: Parameters a validation procedure may declare, without the leading @.
PROCEDURE_PARAMETERS = ("stage_table", "load_id", "load_type", "table_name")


@dataclass(frozen=True)
class ProcedureStatements:
    """The statements of a stored-procedure validation hook (apart, so tests can compile them)."""

    exists: sa.TextClause
    parameters: sa.TextClause
    name: str

    def execute(self, declared: list[str]) -> sa.TextClause:
        """``EXEC <proc> @p = :p, ...`` for the declared parameters we know."""
        wanted = [p for p in PROCEDURE_PARAMETERS if p in declared]
        args = ", ".join(f"@{p} = :{p}" for p in wanted)
        return sa.text(f"SET NOCOUNT ON; EXEC {self.name} {args}".rstrip())


class _ExecuteMany:
    """A `Sink` for drivers that take many rows of parameters at once (sqlite3, pyodbc)."""

    def __init__(self, adapter: BaseAdapter, cursor: Any, sql: str) -> None:
        self._adapter, self._cursor, self._sql = adapter, cursor, sql

    def rows(self, first: int, rows: Rows) -> None:
        # The reader's lists take their row number in place: no tuple built per row.
        for number, row in enumerate(rows, first):
            row.append(number)  # type: ignore[attr-defined]
        self._adapter.execute_batch(self._cursor, self._sql, rows)
        faults.hit("write.batch")

    def arrow(self, first: int, columns: Sequence[Any]) -> None:
        # to_numpy().tolist() makes the str objects 4-5x faster than to_pylist (measured); the
        # driver binds tuples as well as lists.
        count = len(columns[0]) if columns else 0
        cells = [c.to_numpy(zero_copy_only=False).tolist() for c in columns]
        self._adapter.execute_batch(
            self._cursor, self._sql, list(zip(*cells, range(first, first + count), strict=True))
        )
        faults.hit("write.batch")
