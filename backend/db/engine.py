"""Open the database once per process and translate driver errors into the product's errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from backend.db.dialects import DialectAdapter, adapter_for
from backend.db.schema import Catalog, build_catalog
from backend.errors import DatabaseUnavailableError, IngestError, RowError

if TYPE_CHECKING:
    from backend.config import Settings

# SQLSTATEs and native codes that mean "try again later", not "this file is bad".
# Connection loss (08xxx), serialization failure/deadlock, lock timeouts, server shutting down,
# resources exhausted; read-only or revoked writes are an environment problem too: the file
# must not be sent to error/ because the database refused it.
_TRANSIENT_SQLSTATES = {
    "40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "53000", "53100", "53200", "53300",
    "25006", "42501", "HYT00", "HYT01", "08S01", "08001", "08003", "08004", "08006", "08007",
}  # fmt: skip
_TRANSIENT_MSSQL_CODES = {
    "1205",
    "1204",
    "1222",
    "4060",
    "40613",
    "40501",
    "40143",
    "49918",
    "49919",
    "49920",
}
_TRANSIENT_WORDS = ("database is locked", "database is busy", "disk i/o error", "unable to open database",
                    "database or disk is full", "no space left on device", "readonly database",
                    "server closed the connection", "connection refused", "could not connect",
                    "terminating connection", "connection is closed", "the database system is",
                    "timeout expired", "lost connection", "connection reset", "ssl syscall",
                    "consuming input failed", "communication link failure")  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth retrying (outage, deadlock, lock timeout, refused write)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", exc)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    if sqlstate is None and getattr(orig, "args", None):
        first = str(orig.args[0])
        if len(first) == 5:
            sqlstate = first  # pyodbc puts the SQLSTATE first
    if sqlstate and (sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")):
        return True
    text = str(orig).lower()
    if any(f"({code})" in text or f" {code} " in text for code in _TRANSIENT_MSSQL_CODES):
        return True
    return any(word in text for word in _TRANSIENT_WORDS) or isinstance(
        exc, (sa.exc.DisconnectionError, sa.exc.TimeoutError)
    )


def translate_error(exc: BaseException, *, stage: str = "database") -> IngestError:
    """Map a SQLAlchemy/driver error to DatabaseUnavailableError (retry) or RowError (file is bad)."""
    if isinstance(exc, IngestError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    # Only the driver's first line: SQLAlchemy's message repeats the statement and parameters,
    # which can carry data and are useless to an operator.
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else exc.__class__.__name__
    if is_transient(exc):
        return DatabaseUnavailableError(f"database unavailable: {message}", stage=stage)
    return RowError(f"the database refused the data: {message}", stage=stage)


class Database:
    """The engine, its dialect adapter and the product's catalog, created once and passed down."""

    def __init__(self, engine: Engine, adapter: DialectAdapter, catalog: Catalog, settings: Settings) -> None:
        self.engine = engine
        self.adapter = adapter
        self.catalog = catalog
        self.settings = settings

    @property
    def dialect_name(self) -> str:
        return self.adapter.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads; its implicit transaction is rolled back at the end."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise translate_error(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection inside one write transaction: committed on success, rolled back on any error."""
        try:
            with self.engine.connect() as conn:
                self.adapter.begin_write(conn)
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
        except sa.exc.DBAPIError as exc:
            raise translate_error(exc) from exc

    def ping(self) -> None:
        """Raise DatabaseUnavailableError unless a trivial query succeeds."""
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def init_db(self) -> None:
        """Create the schemas and the product's tables; safe to run again, also concurrently."""
        for attempt in range(5):
            try:
                with self.write() as conn:
                    for schema in (self.catalog.data_schema, self.catalog.backup_schema):
                        self.adapter.ensure_schema(conn, schema)
                with self.write() as conn:
                    self.catalog.metadata.create_all(conn, checkfirst=True)
                return
            except RowError:
                # Another process created the same object between our check and our CREATE
                # (two daemons starting together); the next round's check sees it.
                if attempt == 4:
                    raise

    def reflect(self, conn: Connection, name: str, schema: str) -> sa.Table | None:
        """The live definition of `schema.name`, or None when it does not exist."""
        if not sa.inspect(conn).has_table(name, schema=schema):
            return None
        return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(settings: Settings, url: str | None = None) -> Database:
    """Create the engine for `url` (default: the settings' URL) with its dialect adapter."""
    target = make_url(url or settings.url)
    adapter = adapter_for(target)
    engine = adapter.create_engine(target, settings)
    catalog = build_catalog(settings.data_schema, settings.backup_schema)
    return Database(engine, adapter, catalog, settings)
