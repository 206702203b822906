"""SQL Server (pyodbc): ``fast_executemany`` with explicit input sizes, publish under an application lock.

Input sizes are set per batch so NVARCHAR(MAX) cannot make pyodbc allocate 2 GB per cell, and
lengths are known before sending because fast_executemany has been known to truncate silently
(pyodbc#480).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from backend.db.adapter import (
    BaseAdapter,
    ProcedureStatements,
    Rows,
    keep_empty,
    literal_sql,
    mask_sql,
    render_boolean,
    text_width,
)
from backend.errors import ConfigError
from backend.models import ColumnKind, ColumnType

if TYPE_CHECKING:
    from backend.config import Settings

#: strptime date parts -> SQL Server CONVERT styles (dd/mm/yyyy is 103, mm/dd/yyyy is 101, ...).
_MSSQL_DATE_STYLES = {
    "%d/%m/%Y": 103, "%d.%m.%Y": 104, "%d-%m-%Y": 105,
    "%m/%d/%Y": 101, "%m-%d-%Y": 110, "%m.%d.%Y": 101,
    "%Y/%m/%d": 111, "%Y.%m.%d": 102, "%Y-%m-%d": 23,
}  # fmt: skip


#: Column names SQL Server refuses: none among our normalised names. Every identifier is written
#: bracketed (QUOTENAME rules), which admits keywords such as ``key`` or ``timestamp``, and the
#: names SQL Server keeps for itself (``$IDENTITY``, ``$ROWGUID``) cannot be spelled in [a-z0-9_].
MSSQL_RESERVED_COLUMNS: frozenset[str] = frozenset()


_DOTNET_PARTS = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%f": "ffffff"}


class MSSQLAdapter(BaseAdapter):
    name = "mssql"
    driver_module = "pyodbc"
    max_identifier_length = 128
    reserved_column_names = MSSQL_RESERVED_COLUMNS
    _pyodbc_lock = threading.Lock()

    def create_engine(self, url: URL, settings: Settings) -> Engine:
        try:
            import pyodbc
        except ImportError as exc:
            raise ConfigError(
                "SQL Server needs pyodbc and an ODBC driver manager (unixODBC on Linux): "
                f"{exc.__class__.__name__}: {exc}"
            ) from None
        with self._pyodbc_lock:
            # Stale pooled ODBC connections fail with 08S01 after idling; SQLAlchemy pools instead.
            pyodbc.pooling = False
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            fast_executemany=True,
            # NVARCHAR(MAX) rather than the deprecated NTEXT (SQL Server 2012 and later).
            deprecate_large_types=True,
            connect_args={"timeout": max(1, int(settings.db_connect_timeout_seconds))},
        )

    def text_type(self, max_length: int) -> sa.types.TypeEngine[Any]:
        width = text_width(max_length)
        return sa.UnicodeText() if width is None else sa.Unicode(width)

    _alter_column = "ALTER TABLE {table} ALTER COLUMN {column} {type} NULL"

    def value_length(self, value: Any) -> Any:
        # LEN ignores trailing spaces; NVARCHAR(n) counts UTF-16 code units, two bytes each.
        return sa.func.datalength(value, type_=sa.Integer) // 2

    def parse_date(self, value: Any, target: sa.types.TypeEngine[Any], date_format: str) -> Any:
        style = _MSSQL_DATE_STYLES.get(date_format.split(" ")[0].split("T")[0])
        if style is None:
            raise ConfigError(f"date format {date_format!r} has no SQL Server CONVERT style; load it as text")
        kind = "DATETIME2" if isinstance(target, sa.DateTime) else "DATE"
        return sa.func.convert(sa.literal_column(kind), value, sa.literal_column(str(style)))

    def render_text(self, value: Any, column_type: ColumnType) -> Any:
        kind = column_type.kind
        if kind is ColumnKind.BOOLEAN:
            return render_boolean(value, column_type)
        if kind in (ColumnKind.DATE, ColumnKind.DATETIME):
            from backend.detection.types import DEFAULT_FORMATS

            pattern = _dotnet_date_pattern(column_type.date_format or DEFAULT_FORMATS[kind])
            return sa.func.format(value, pattern, "en-US")
        # DECIMAL(p, s) converts with its s places, integers plainly.
        return sa.cast(value, sa.UnicodeText())

    def retype_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any], using: Any
    ) -> None:
        """SQL Server: the rendered values wait in a scratch column while the column changes type
        in place (so the column keeps its position), then move back into it."""
        preparer = conn.dialect.identifier_preparer
        name, quoted = preparer.format_table(table), preparer.quote(column)
        scratch = preparer.quote(f"{column}__retype")
        type_sql = type_.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {name} ADD {scratch} {type_sql} NULL")
        # Names went through the dialect's quoting; `using` is our own expression.
        conn.exec_driver_sql(f"UPDATE {name} SET {scratch} = {literal_sql(conn, using)}")  # noqa: S608
        conn.exec_driver_sql(f"ALTER TABLE {name} ALTER COLUMN {quoted} {type_sql} NULL")
        conn.exec_driver_sql(f"UPDATE {name} SET {quoted} = {scratch}")  # noqa: S608
        conn.exec_driver_sql(f"ALTER TABLE {name} DROP COLUMN {scratch}")

    def protect_text(self, value: Any, action: str) -> Any:
        if action == "hash":
            # NVARCHAR -> VARCHAR under a UTF-8 collation gives the UTF-8 bytes the others hash
            # (SQL Server 2019+).
            as_varchar = sa.cast(value.collate("Latin1_General_100_CI_AS_SC_UTF8"), sa.VARCHAR())
            digest = sa.func.hashbytes("SHA2_256", as_varchar)
            return keep_empty(
                value, sa.func.lower(sa.func.convert(sa.literal_column("VARCHAR(64)"), digest, 2))
            )
        return keep_empty(value, mask_sql(value, sa.func.length(value), sa.func.replicate))

    def procedure_statements(self, conn: Connection, schema: str, name: str) -> ProcedureStatements | None:
        return procedure_statements(conn, schema, name)

    def stage_insert_sql(self, conn: Connection, stage: sa.Table) -> str:
        """The staging INSERT, with TABLOCK: the #temp table is the session's own, and a table
        lock lets SQL Server log the bulk insert minimally and skip row locks."""
        return str(sa.insert(stage).with_hint("WITH (TABLOCK)").compile(dialect=conn.dialect))

    def stage_table(self, metadata: sa.MetaData, name: str, columns: Sequence[str]) -> sa.Table:
        # A #temp table is private to the session and disappears if the process dies.
        return sa.Table(
            "#" + name,
            metadata,
            sa.Column("_row_number", sa.BigInteger, nullable=False),
            *(sa.Column(c, sa.UnicodeText) for c in columns),
        )

    @contextlib.contextmanager
    def stage_writer(self, conn: Connection, stage: sa.Table) -> Iterator[Callable[[int, Rows], None]]:
        sql = self.stage_insert_sql(conn, stage)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.fast_executemany = True

        def send(first: int, rows: Rows) -> None:
            if not rows:
                return
            # Explicit numbers: SQL Server does not promise IDENTITY order for an array insert.
            numbered = [(first + i, *row) for i, row in enumerate(rows)]
            cursor.setinputsizes(mssql_input_sizes(numbered, len(stage.columns)))
            cursor.executemany(sql, numbered)

        try:
            yield send
        finally:
            cursor.close()

    def serialize_publish(self, conn: Connection, schema: str, table: str) -> None:
        # An application lock owned by the transaction, released at commit or rollback.
        conn.execute(
            sa.text(
                "DECLARE @rc int; EXEC @rc = sp_getapplock @Resource = :name, @LockMode = 'Exclusive', "
                "@LockOwner = 'Transaction', @LockTimeout = 600000; "
                "IF @rc < 0 THROW 51000, 'could not take the publish lock', 1;"
            ),
            {"name": f"refdata:{schema}.{table}"},
        )

    def lock_for_publish(self, conn: Connection, table: sa.Table) -> None:
        # An update lock on the table serialises publishers; readers under READ COMMITTED wait
        # for the commit and then see the new rows, never a partial table.
        name = conn.dialect.identifier_preparer.format_table(table)
        # The name went through the dialect's identifier quoting above.
        conn.exec_driver_sql(f"SELECT COUNT(*) FROM {name} WITH (UPDLOCK, TABLOCK, HOLDLOCK)")  # noqa: S608


def mssql_input_sizes(rows: Sequence[Sequence[Any]], width: int) -> list[tuple[int, int, int]]:
    """Explicit pyodbc input sizes for one batch: the row number, then one text size per column.

    Sized from the longest value in the batch (at least 1) so pyodbc's parameter array stays
    small; values beyond 4000 characters are bound as NVARCHAR(MAX) (SQL_WLONGVARCHAR).
    """
    sql_bigint, sql_wvarchar, sql_wlongvarchar = -5, -9, -10
    longest = [1] * width
    for row in rows:
        for i in range(1, width):
            value = row[i]
            if value is not None and len(value) > longest[i]:
                longest[i] = len(value)
    sizes = [(sql_bigint, 0, 0)]
    for i in range(1, width):
        sizes.append((sql_wvarchar, longest[i], 0) if longest[i] <= 4000 else (sql_wlongvarchar, 0, 0))
    return sizes


def _dotnet_date_pattern(date_format: str) -> str:
    """A strptime format as a .NET custom format for SQL Server's FORMAT()."""
    out, i = [], 0
    while i < len(date_format):
        part = date_format[i : i + 2]
        if part in _DOTNET_PARTS:
            out.append(_DOTNET_PARTS[part])
            i += 2
        else:
            char = date_format[i]
            out.append(f"\\{char}" if char in "/:.-T" else char)
            i += 1
    return "".join(out)


def procedure_statements(conn_or_dialect: Any, schema: str, name: str) -> ProcedureStatements:
    """Statements that find and run procedure ``schema.name`` on SQL Server."""
    dialect = getattr(conn_or_dialect, "dialect", conn_or_dialect)
    preparer = dialect.identifier_preparer
    quoted = f"{preparer.quote_schema(schema)}.{preparer.quote(name)}"
    return ProcedureStatements(
        exists=sa.text("SELECT OBJECT_ID(:name, 'P')").bindparams(name=quoted),
        parameters=sa.text(
            "SELECT name FROM sys.parameters WHERE object_id = OBJECT_ID(:name, 'P') ORDER BY parameter_id"
        ).bindparams(name=quoted),
        name=quoted,
    )
