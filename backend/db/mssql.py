"""SQL Server (pyodbc): ``fast_executemany`` with explicit input sizes, publish under an application lock.

Input sizes are set per batch so NVARCHAR(MAX) cannot make pyodbc allocate 2 GB per cell, and
lengths are known before sending because fast_executemany has been known to truncate silently
(pyodbc#480).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from backend import faults
from backend.db.adapter import (
    BaseAdapter,
    ProcedureStatements,
    Rows,
    Swap,
    WriteSpec,
    text_width,
    version_name,
)
from backend.db.expressions import keep_empty, literal_sql, mask_sql, render_boolean
from backend.errors import ConfigError
from backend.models import ColumnKind, ColumnType

if TYPE_CHECKING:
    from backend.config import Settings
    from backend.db.schema import Catalog

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

    utf16_widths = True  # NVARCHAR(n) counts UTF-16 code units

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

    def insert_sql(self, conn: Connection, table: sa.Table, spec: WriteSpec) -> str:
        """The base INSERT with TABLOCK: a new version table is the load's own, and a table lock
        lets SQL Server log the bulk insert minimally and skip row locks."""
        sql = super().insert_sql(conn, table, spec)
        name = conn.dialect.identifier_preparer.format_table(table)
        return sql.replace(f"INSERT INTO {name} ", f"INSERT INTO {name} WITH (TABLOCK) ", 1)

    def execute_batch(self, cursor: Any, sql: str, rows: Rows) -> None:
        # fast_executemany with explicit sizes: NVARCHAR(MAX) cannot make pyodbc allocate 2 GB a
        # cell, and no value is silently cut (pyodbc#480). The row number comes last.
        cursor.fast_executemany = True
        cursor.setinputsizes(mssql_input_sizes(rows))
        cursor.executemany(sql, rows)

    def version_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        # A permanent table in ref's filegroup: bulk copy commits, and SWITCH stays in one filegroup.
        return catalog.data_schema, version_name(table, version, self.max_identifier_length)

    def current_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        return catalog.data_schema, table

    def kept_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        return catalog.backup_schema, version_name(table, version, self.max_identifier_length)

    def swap_versions(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int, old: int | None
    ) -> Swap:
        """``ALTER TABLE ... SWITCH``: metadata only when both sides have the same columns and
        indexes on one filegroup. The current rows switch into an empty copy in bkp, the new rows
        into the emptied ``ref.<table>``; a changed definition renames the new table in instead."""
        statements = swap_statements(
            conn.dialect, catalog, table, new, version, old, self.same_definition(conn, catalog, table, new)
        )
        # The replaced rows' copy and switch-out come first (none for a first version): the
        # fault point sits where ref.<table> is empty and the new rows are not in yet.
        moved_out = 2 if old is not None else 0
        for statement in statements[:moved_out]:
            conn.exec_driver_sql(statement)
        faults.hit("publish.swap")
        for statement in statements[moved_out:]:
            conn.exec_driver_sql(statement)
        return Swap()

    def set_aside(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int
    ) -> None:
        """A version loaded in ref moves to bkp under the same name: metadata only."""
        preparer = conn.dialect.identifier_preparer
        kept = preparer.quote_schema(catalog.backup_schema)
        conn.exec_driver_sql(f"ALTER SCHEMA {kept} TRANSFER {preparer.format_table(new)}")

    def same_definition(self, conn: Connection, catalog: Catalog, table: str, new: sa.Table) -> bool:
        inspector = sa.inspect(conn)
        if not inspector.has_table(table, schema=catalog.data_schema):
            return False
        have = [(c["name"], str(c["type"])) for c in inspector.get_columns(table, schema=catalog.data_schema)]
        want = [(c.name, str(c.type.compile(dialect=conn.dialect))) for c in new.columns]
        return have == want

    def temporary_view(self, conn: Connection, name: str, select: Any) -> str:
        """SQL Server has no temporary views: the query itself, as a derived table."""
        return f"({literal_sql(conn, select)}) AS {conn.dialect.identifier_preparer.quote(name)}"

    def drop_temporary_views(self, conn: Connection, names: Sequence[str]) -> None:
        return None

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


def mssql_input_sizes(rows: Rows) -> list[tuple[int, int, int]]:
    """Explicit pyodbc input sizes for one batch: one text size per value, then the row number.

    Sized from the longest value in the batch (at least 1) so pyodbc's parameter array stays
    small; values beyond 4000 characters are bound as NVARCHAR(MAX) (SQL_WLONGVARCHAR).
    """
    sql_bigint, sql_wvarchar, sql_wlongvarchar = -5, -9, -10
    width = len(rows[0]) - 1 if rows else 0
    longest = [1] * width
    for row in rows:
        for i in range(width):
            value = row[i]
            if value is not None and len(value) > longest[i]:
                longest[i] = len(value)
    sizes = [(sql_wvarchar, n, 0) if n <= 4000 else (sql_wlongvarchar, 0, 0) for n in longest]
    sizes.append((sql_bigint, 0, 0))
    return sizes


def swap_statements(
    dialect: Any, catalog: Catalog, table: str, new: sa.Table, version: int, old: int | None, same: bool
) -> list[str]:
    """The T-SQL of a version swap (apart, so that the compile-level tests can read it)."""
    preparer = dialect.identifier_preparer
    live = f"{preparer.quote_schema(catalog.data_schema)}.{preparer.quote(table)}"
    fresh = preparer.format_table(new)
    out: list[str] = []
    if old is not None:
        kept = (
            f"{preparer.quote_schema(catalog.backup_schema)}.{preparer.quote(version_name(table, old, 128))}"
        )
        out.append(f"SELECT TOP 0 * INTO {kept} FROM {live}")  # noqa: S608 - quoted names only
        wait = "WAIT_AT_LOW_PRIORITY (MAX_DURATION = 1 MINUTES, ABORT_AFTER_WAIT = SELF)"
        out.append(f"ALTER TABLE {live} SWITCH TO {kept} WITH ({wait})")
    if old is not None and same:
        out.append(f"ALTER TABLE {fresh} SWITCH TO {live}")
        out.append(f"DROP TABLE {fresh}")
    else:
        if old is not None:
            out.append(f"DROP TABLE {live}")
        rename = f"{catalog.data_schema}.{new.name}".replace("'", "''")
        out.append(f"EXEC sp_rename N'{rename}', N'{table.replace(chr(39), chr(39) * 2)}'")
    return out


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
