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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import URL, Connection, Engine

from backend.models import ColumnKind, ColumnType

if TYPE_CHECKING:
    from backend.config import Settings

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

    def stage_table(self, metadata: sa.MetaData, name: str, columns: Sequence[str]) -> sa.Table: ...

    def stage_writer(
        self, conn: Connection, stage: sa.Table
    ) -> contextlib.AbstractContextManager[Callable[[int, Rows], None]]:
        """A function `send(first, rows)` that appends `rows` (values only) to `stage`, numbered
        `first`, `first` + 1, ... in order; everything is sent when the context exits normally.
        """
        ...

    def value_length(self, value: Any) -> Any:
        """SQL for the length of a staged text value, in the units its column width counts."""
        ...

    def drop_stage(self, conn: Connection, stage: sa.Table) -> None:
        """Get rid of `stage` after a load (outside any transaction); may close the connection."""
        ...

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

    def value_length(self, value: Any) -> Any:
        return sa.func.length(value, type_=sa.Integer)

    def drop_stage(self, conn: Connection, stage: sa.Table) -> None:
        with conn.begin():
            stage.drop(conn, checkfirst=False)

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
            return sa.case((value == true, sa.true()), (value == false, sa.false()), else_=sa.null())
        return sa.cast(value, target)

    def _insert_sql(self, conn: Connection, table: sa.Table) -> str:
        return str(sa.insert(table).compile(dialect=conn.dialect))

    #: Top-level module of the driver (``sqlite3``, ``psycopg``, ``pyodbc``).
    driver_module: ClassVar[str] = ""

    def is_driver_error(self, exc: BaseException) -> bool:
        return bool(self.driver_module) and type(exc).__module__.split(".")[0] == self.driver_module

    def procedure_statements(self, conn: Connection, schema: str, name: str) -> ProcedureStatements | None:
        return None

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


def literal_sql(conn: Connection, expression: Any) -> str:
    """`expression` as SQL text with its constants inlined (for DDL, which takes no parameters)."""
    return str(expression.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def render_boolean(value: Any, column_type: ColumnType) -> Any:
    true = column_type.true_text or "true"
    false = column_type.false_text or "false"
    return sa.case((value == sa.true(), true), (value == sa.false(), false), else_=sa.null())


def iso_castable(date_format: str) -> bool:
    """Formats every database CASTs from text the same way: ISO dates, optional time."""
    return date_format.startswith("%Y-%m-%d") and "/" not in date_format and "." not in date_format[:8]


def mask_sql(value: Any, length: Any, repeat: Any) -> Any:
    """All but the last four characters as ``*`` (shorter values: all), with the database's own
    length and repeat functions."""
    return sa.case(
        (length > 4, sa.func.concat(repeat("*", length - 4), sa.func.right(value, 4))),
        else_=repeat("*", length),
    )


def keep_empty(column: Any, expression: Any) -> Any:
    """`expression`, but NULL and '' stay as they are."""
    return sa.case((sa.or_(column.is_(None), column == ""), column), else_=expression)


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
