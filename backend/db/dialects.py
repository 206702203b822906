"""What differs between SQLite, PostgreSQL and SQL Server, behind one small interface.

Everything else (DDL, publish statements, tracking) is SQLAlchemy Core and compiles for all
three. An adapter answers four questions: how to connect, what a text/typed column is, how to
stage a batch of rows fast (and number them), and how to take the publish lock.

- SQLite: schemas are attached database files next to the main one (``refdata.ref.db``), in
  WAL mode. Rollback-journal mode would make a transaction atomic across the attached files, but
  its per-file SHARED/EXCLUSIVE locks deadlock between a committing writer and a reader that
  holds one file and waits for another (seen with two daemons on one database). In WAL mode
  readers never block writers. What WAL gives up is atomicity *across* files on a crash: SQLite
  commits attached files one after the other, so ``bkp`` is attached before ``ref`` and commits
  first; a crash in between leaves at worst an extra backup version of the unchanged live rows,
  never new live rows without their backup. The data, its tracking row and its audit events all
  live in ``ref`` and commit together. Bulk path: ``executemany`` inside one transaction.
- PostgreSQL (psycopg 3): bulk path is ``COPY ... FROM STDIN``.
- SQL Server (pyodbc): ``fast_executemany`` with explicit input sizes per batch, so
  NVARCHAR(MAX) cannot make pyodbc allocate 2 GB per cell, and lengths are checked before
  sending because fast_executemany has been known to truncate silently (pyodbc#480).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.compiler import compiles

from backend.errors import ConfigError
from backend.models import ColumnKind, ColumnType

if TYPE_CHECKING:
    from backend.config import Settings

#: Text columns are sized to the data, rounded up to one of these widths so that a later file
#: with slightly longer values rarely needs the column widened.
_TEXT_WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4000)


#: `table_fingerprint` cannot tell: the caller reflects the table in full, uncached.
UNKNOWN_FINGERPRINT = object()
# PostgreSQL's table fingerprint: the relation's oid and its live columns (name, type, type
# modifier such as a varchar length, NOT NULL); no row means no such table. The relkinds are
# those SQLAlchemy's has_table accepts.
_PG_FINGERPRINT = sa.text(
    "SELECT c.oid, a.attname, a.atttypid, a.atttypmod, a.attnotnull "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE n.nspname = :schema AND c.relname = :name AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
    "ORDER BY a.attnum"
)

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
    #: Bound parameters one statement may carry (for multi-row VALUES fallbacks).
    max_parameters: ClassVar[int]

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

    def render_text(self, value: Any, column_type: ColumnType) -> Any:
        """SQL writing a stored value of `column_type` back as the text its file had."""
        ...

    def retype_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any], using: Any
    ) -> None:
        """Change `column` to `type_`, every row's new value given by the SQL expression `using`."""
        ...


class _Base:
    name: ClassVar[str] = "base"
    max_identifier_length: ClassVar[int] = 63
    max_parameters: ClassVar[int] = 999

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

    def lock_for_publish(self, conn: Connection, table: sa.Table) -> None:
        """Serialise publishers of one table; readers keep seeing the committed rows."""

    def serialize_publish(self, conn: Connection, schema: str, table: str) -> None:
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
        if isinstance(target, (sa.Date, sa.DateTime)) and date_format and not _iso_castable(date_format):
            return self.parse_date(value, target, date_format)
        if isinstance(target, sa.Boolean):
            true = (column_type.true_text if column_type else None) or "true"
            false = (column_type.false_text if column_type else None) or "false"
            return sa.case((value == true, sa.true()), (value == false, sa.false()), else_=sa.null())
        return sa.cast(value, target)

    def render_text(self, value: Any, column_type: ColumnType) -> Any:
        """PostgreSQL: numbers and ISO layouts CAST to the file's text; other formats via to_char."""
        kind = column_type.kind
        if kind is ColumnKind.BOOLEAN:
            return _render_boolean(value, column_type)
        if kind in (ColumnKind.DATE, ColumnKind.DATETIME) and column_type.date_format:
            return sa.func.to_char(value, _pg_date_pattern(column_type.date_format))
        if kind is ColumnKind.DATETIME:
            return sa.func.to_char(value, "YYYY-MM-DD HH24:MI:SS")
        return sa.cast(value, sa.Text())

    def retype_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any], using: Any
    ) -> None:
        """PostgreSQL: one ``ALTER COLUMN ... TYPE ... USING``; `using` names the column unqualified."""
        preparer = conn.dialect.identifier_preparer
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.format_table(table)} ALTER COLUMN {preparer.quote(column)} "
            f"TYPE {type_.compile(dialect=conn.dialect)} USING {_literal_sql(conn, using)}"
        )

    def parse_date(self, value: Any, target: sa.types.TypeEngine[Any], date_format: str) -> Any:
        """Parse `value` with strptime-style `date_format` (PostgreSQL's to_date / to_timestamp)."""
        pattern = _pg_date_pattern(date_format)
        if isinstance(target, sa.DateTime):
            return sa.cast(sa.func.to_timestamp(value, pattern), sa.DateTime())
        return sa.func.to_date(value, pattern)

    def _insert_sql(self, conn: Connection, table: sa.Table) -> str:
        return str(sa.insert(table).compile(dialect=conn.dialect))


#: Temp-database pages (of 4 KiB by default: about 40 MB) past which SQLite closes the
#: connection instead of dropping the stage.
_SQLITE_DISCARD_PAGES = 10_000
#: Significant digits a SQLite REAL (NUMERIC affinity) keeps exactly.
_SQLITE_REAL_DIGITS = 15


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
        from decimal import Decimal

        return lambda v: None if v is None else Decimal(v if isinstance(v, str) else repr(v))


@compiles(ExactDecimal)
def _compile_exact_decimal(type_: ExactDecimal, compiler: Any, **kw: Any) -> str:
    return f"DECIMAL_TEXT({type_.precision}, {type_.scale})"


class SQLiteAdapter(_Base):
    name = "sqlite"
    max_identifier_length = 128
    max_parameters = 999  # the pre-3.32 default; newer builds allow more, we never need it

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
            kind = "datetime" if isinstance(target, sa.DateTime) else "date"
            return sa.func.refdata_strptime(value, date_format, kind)
        return super().cast_text(value, target, column_type)

    def render_text(self, value: Any, column_type: ColumnType) -> Any:
        kind = column_type.kind
        if kind is ColumnKind.BOOLEAN:
            return _render_boolean(value, column_type)
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

    def drop_stage(self, conn: Connection, stage: sa.Table) -> None:
        # DROP TABLE walks and frees every page of the temp table (0.45 s for 850k rows); closing
        # the connection just deletes its temp file (0.03 s). Small stages are dropped, so that
        # a burst of small files keeps its pooled connections.
        # Never an in-memory database: its one shared connection is the whole database.
        with conn.begin():
            pages = conn.exec_driver_sql("PRAGMA temp.page_count").scalar() or 0
            discard = pages > _SQLITE_DISCARD_PAGES and not _sqlite_in_memory(conn.engine.url)
            if not discard:
                stage.drop(conn, checkfirst=False)
        if discard:
            conn.invalidate()

    def begin_write(self, conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that upgrades later can
        # fail with SQLITE_BUSY without waiting, whatever busy_timeout says.
        conn.execution_options(sqlite_begin="IMMEDIATE")
        conn.begin()
        conn.execution_options(sqlite_begin="DEFERRED")

    def stage_table(self, metadata: sa.MetaData, name: str, columns: Sequence[str]) -> sa.Table:
        # INTEGER PRIMARY KEY is the rowid: rows inserted without a number get the next one, so
        # the rows go to executemany exactly as the csv reader made them (no tuple per row).
        return sa.Table(
            name,
            metadata,
            sa.Column("_row_number", sa.Integer, primary_key=True),
            *(sa.Column(c, sa.Text) for c in columns),
            prefixes=["TEMPORARY"],
        )

    @contextlib.contextmanager
    def stage_writer(self, conn: Connection, stage: sa.Table) -> Iterator[Callable[[int, Rows], None]]:
        numbered = self._insert_sql(conn, stage)
        values = [c.name for c in stage.columns if c.name != "_row_number"]
        unnumbered = str(sa.insert(stage).compile(dialect=conn.dialect, column_keys=values))
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]

        def send(first: int, rows: Rows) -> None:
            if not rows:
                return
            # The first row carries its number (runs may follow a gap left by a skipped row);
            # the rest take rowid + 1 each.
            cursor.execute(numbered, (first, *rows[0]))
            cursor.executemany(unnumbered, itertools.islice(rows, 1, None))

        try:
            yield send
        finally:
            cursor.close()


class PostgreSQLAdapter(_Base):
    name = "postgresql"
    max_identifier_length = 63
    max_parameters = 65535

    def create_engine(self, url: URL, settings: Settings) -> Engine:
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {
            "connect_timeout": max(1, int(settings.db_connect_timeout_seconds)),
            "application_name": "refdata-monitor",
        }
        if settings.db_statement_timeout_seconds:
            ms = int(settings.db_statement_timeout_seconds * 1000)
            connect_args["options"] = f"-c statement_timeout={ms}"
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    def text_type(self, max_length: int) -> sa.types.TypeEngine[Any]:
        width = text_width(max_length)
        return sa.Text() if width is None else sa.String(width)

    def stage_table(self, metadata: sa.MetaData, name: str, columns: Sequence[str]) -> sa.Table:
        # The number comes from an identity: COPY sends values only (no tuple built per row).
        return sa.Table(
            name,
            metadata,
            sa.Column("_row_number", sa.BigInteger, sa.Identity(start=1), nullable=False),
            *(sa.Column(c, sa.Text) for c in columns),
            prefixes=["TEMPORARY"],
        )

    @contextlib.contextmanager
    def stage_writer(self, conn: Connection, stage: sa.Table) -> Iterator[Callable[[int, Rows], None]]:
        writer = _CopyWriter(conn, stage)
        try:
            yield writer
        except BaseException as exc:
            writer.close(exc)
            raise
        writer.close(None)

    def table_fingerprint(self, conn: Connection, schema: str, name: str) -> Hashable:
        rows = conn.execute(_PG_FINGERPRINT, {"schema": schema, "name": name}).all()
        return tuple(tuple(row) for row in rows) if rows else None

    def serialize_publish(self, conn: Connection, schema: str, table: str) -> None:
        # An advisory lock, released at commit or rollback, also covers a table not created yet.
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
            {"name": f"refdata:{schema}.{table}"},
        )

    def lock_for_publish(self, conn: Connection, table: sa.Table) -> None:
        # EXCLUSIVE blocks other writers but not plain SELECTs: readers see the old rows until commit.
        conn.exec_driver_sql(
            f"LOCK TABLE {conn.dialect.identifier_preparer.format_table(table)} IN EXCLUSIVE MODE"
        )


class MSSQLAdapter(_Base):
    name = "mssql"
    max_identifier_length = 128
    # 2,100 per request; keep headroom as mssql-django does.
    max_parameters = 2050
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
            return _render_boolean(value, column_type)
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
        conn.exec_driver_sql(f"UPDATE {name} SET {scratch} = {_literal_sql(conn, using)}")  # noqa: S608
        conn.exec_driver_sql(f"ALTER TABLE {name} ALTER COLUMN {quoted} {type_sql} NULL")
        conn.exec_driver_sql(f"UPDATE {name} SET {quoted} = {scratch}")  # noqa: S608
        conn.exec_driver_sql(f"ALTER TABLE {name} DROP COLUMN {scratch}")

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


class _CopyWriter:
    """Sends staged rows through one COPY that stays open across batches.

    The server parses and stores a batch on its own core while we read the next one; a COPY per
    batch made us wait for the server at the end of every batch (2.7 s per 100 MB, profile). A
    gap in the numbers (a skipped row) ends the COPY and restarts the identity at the next run.
    """

    def __init__(self, conn: Connection, stage: sa.Table) -> None:
        preparer = conn.dialect.identifier_preparer
        self._table = preparer.format_table(stage)
        cols = ", ".join(preparer.quote(c.name) for c in stage.columns if c.name != "_row_number")
        self._statement = f"COPY {self._table} ({cols}) FROM STDIN"
        self._cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self._open: Any = None  # the COPY context manager while a COPY is open
        self._copy: Any = None
        self._next = 0

    def __call__(self, first: int, rows: Rows) -> None:
        if not rows:
            return
        if self._open is not None and first != self._next:
            self.close(None)
        if self._open is None:
            self._cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, '_row_number'), %s, false)", (self._table, first)
            )
            self._open = self._cursor.copy(self._statement)
            self._copy = self._open.__enter__()
        text = copy_text(rows)
        if text is not None:
            self._copy.write(text)
        else:
            # psycopg's write_row is C code (about 5 us a row of 12 values here).
            write_row = self._copy.write_row
            for row in rows:
                write_row(row)
        self._next = first + len(rows)

    def close(self, exc: BaseException | None) -> None:
        """End the open COPY: commit its rows, or abort it (CopyFail) when `exc` is given."""
        opened, self._open, self._copy = self._open, None, None
        if opened is not None:
            opened.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)


def copy_text(rows: Rows) -> str | None:
    """The batch in COPY's text format, or None when a value would need escaping.

    Joined in C (about 0.3 us a row against 5 us for psycopg's write_row). The counts prove that
    no value holds a tab or a line break and none a backslash (COPY's escape character), so the
    text needs no escaping; otherwise the caller sends the rows one by one.
    """
    width = len(rows[0])
    text = "\n".join(map("\t".join, rows))
    if (
        text.count("\t") != len(rows) * (width - 1)
        or text.count("\n") != len(rows) - 1
        or "\\" in text
        or "\r" in text
    ):
        return None
    return text + "\n"


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


#: strptime date parts -> SQL Server CONVERT styles (dd/mm/yyyy is 103, mm/dd/yyyy is 101, ...).
_MSSQL_DATE_STYLES = {
    "%d/%m/%Y": 103, "%d.%m.%Y": 104, "%d-%m-%Y": 105,
    "%m/%d/%Y": 101, "%m-%d-%Y": 110, "%m.%d.%Y": 101,
    "%Y/%m/%d": 111, "%Y.%m.%d": 102, "%Y-%m-%d": 23,
}  # fmt: skip
#: Date formats SQLite can store as written (SQLAlchemy's Date/DateTime read them back as is).
_SQLITE_NATIVE_FORMATS = frozenset({"%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"})
_SQLITE_T_FORMATS = frozenset({"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"})
_PG_PARTS = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "HH24", "%M": "MI", "%S": "SS", "%f": "US"}


def _literal_sql(conn: Connection, expression: Any) -> str:
    """`expression` as SQL text with its constants inlined (for DDL, which takes no parameters)."""
    return str(expression.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _render_boolean(value: Any, column_type: ColumnType) -> Any:
    true = column_type.true_text or "true"
    false = column_type.false_text or "false"
    return sa.case((value == sa.true(), true), (value == sa.false(), false), else_=sa.null())


def _iso_castable(date_format: str) -> bool:
    """Formats every database CASTs from text the same way: ISO dates, optional time."""
    return date_format.startswith("%Y-%m-%d") and "/" not in date_format and "." not in date_format[:8]


def _pg_date_pattern(date_format: str) -> str:
    out, i = [], 0
    while i < len(date_format):
        part = date_format[i : i + 2]
        if part in _PG_PARTS:
            out.append(_PG_PARTS[part])
            i += 2
        else:
            char = date_format[i]
            out.append(f'"{char}"' if char.isalpha() else char)
            i += 1
    return "".join(out)


_DOTNET_PARTS = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%f": "ffffff"}


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


_ADAPTERS: dict[str, Callable[[], DialectAdapter]] = {
    "sqlite": SQLiteAdapter,
    "postgresql": PostgreSQLAdapter,
    "mssql": MSSQLAdapter,
}


def adapter_for(url: str | URL) -> DialectAdapter:
    """The adapter for a URL's backend, or ConfigError for an unsupported one."""
    try:
        backend = make_url(url).get_backend_name()
    except Exception:  # noqa: BLE001 - never echo a URL that may hold a password
        raise ConfigError("DATABASE_URL is not a valid SQLAlchemy URL") from None
    if backend == "postgres":
        backend = "postgresql"
    try:
        return _ADAPTERS[backend]()
    except KeyError:
        raise ConfigError(
            f"unsupported database {backend!r}; use sqlite, postgresql or mssql+pyodbc"
        ) from None
