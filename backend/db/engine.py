"""Open the database once per process and translate driver errors into the product's errors."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from backend.db.dialects import UNKNOWN_FINGERPRINT, DialectAdapter, adapter_for
from backend.db.schema import Catalog, add_missing_columns, build_catalog
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


# Callbacks to run if a connection's current transaction rolls back, per Connection object (not
# in `Connection.info`: reading that on a connection invalidated by a lost server raises, and a
# rollback is exactly when the hooks must run).
_rollback_hooks: weakref.WeakKeyDictionary[Connection, list[Callable[[], None]]] = weakref.WeakKeyDictionary()
_rollback_hooks_lock = threading.Lock()


class Database:
    """The engine, its dialect adapter and the product's catalog, created once and passed down."""

    def __init__(self, engine: Engine, adapter: DialectAdapter, catalog: Catalog, settings: Settings) -> None:
        self.engine = engine
        self.adapter = adapter
        self.catalog = catalog
        self.settings = settings
        # (schema, name) -> (catalog fingerprint, reflected definition); see `reflect`.
        self._tables: dict[tuple[str, str], tuple[Hashable, sa.Table]] = {}
        self._tables_lock = threading.Lock()
        # A transaction that ends without either event (its connection was lost) drops its
        # hooks at the connection's next BEGIN: its outcome is unknown, and running them for
        # a later transaction would be wrong.
        for name, listener in (("begin", _drop_hooks), ("commit", _drop_hooks), ("rollback", _run_hooks)):
            if not sa.event.contains(engine, name, listener):
                sa.event.listen(engine, name, listener)

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

    def on_rollback(self, conn: Connection, callback: Callable[[], None]) -> None:
        """Run `callback` if the transaction `conn` is in rolls back (forgotten at its commit)."""
        with _rollback_hooks_lock:
            _rollback_hooks.setdefault(conn, []).append(callback)

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
                with self.write() as conn:
                    add_missing_columns(conn, self.catalog)
                return
            except RowError:
                # Another process created the same object between our check and our CREATE
                # (two daemons starting together); the next round's check sees it.
                if attempt == 4:
                    raise

    def reflect(self, conn: Connection, name: str, schema: str) -> sa.Table | None:
        """The live definition of `schema.name` as `conn` sees it, or None when it does not exist.

        Full reflection costs SQLAlchemy about ten catalog queries and much Python; a burst of
        small files into one table paid it three times per file. So definitions are cached per
        process, and every call first reads a cheap catalog fingerprint of the table:

        - SQLite: the table's ``CREATE TABLE`` text in ``sqlite_master`` (ALTER TABLE rewrites it);
        - PostgreSQL: the relation's oid and its columns' names, types, type modifiers and
          NOT NULL flags (one query on ``pg_class``/``pg_attribute``);
        - SQL Server and others: none (no live server to prove a query on), always reflected.

        A cached definition is returned only when the fingerprint read now equals the one read
        when it was reflected. The fingerprint covers everything the pipeline takes from a
        reflected table (column names, order, types and lengths, nullability), so whoever
        changed the table (this process, a second daemon, an operator's ALTER or a DROP and
        CREATE), and whether that DDL later committed or rolled back, a cached definition can
        only be handed out for a catalog that holds that very definition. Hence no DDL
        listener is needed for correctness; our own DDL sites still call `forget_table`, which
        keeps the cache small and the intent visible. The fingerprint is read in the caller's
        transaction, so inside a transaction that ran DDL it sees that DDL.
        """
        key = (schema, name)
        fingerprint = self.adapter.table_fingerprint(conn, schema, name)
        if fingerprint is UNKNOWN_FINGERPRINT:
            return self._reflect_uncached(conn, name, schema)
        if fingerprint is None:
            self.forget_table(schema, name)
            return None
        with self._tables_lock:
            cached = self._tables.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        table = self._reflect_uncached(conn, name, schema)
        # Kept only when the definition provably belongs to the fingerprint: under READ
        # COMMITTED (PostgreSQL) another session's DDL may commit between the two reads.
        if table is not None and self.adapter.table_fingerprint(conn, schema, name) == fingerprint:
            with self._tables_lock:
                self._tables[key] = (fingerprint, table)
        return table

    def forget_table(self, schema: str, name: str) -> None:
        """Drop the cached definition of `schema.name` (call it wherever our own DDL changes it)."""
        with self._tables_lock:
            self._tables.pop((schema, name), None)

    def _reflect_uncached(self, conn: Connection, name: str, schema: str) -> sa.Table | None:
        if not sa.inspect(conn).has_table(name, schema=schema):
            return None
        return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)

    def dispose(self) -> None:
        self.engine.dispose()


def _drop_hooks(conn: Connection) -> None:
    with _rollback_hooks_lock:
        _rollback_hooks.pop(conn, None)


def _run_hooks(conn: Connection) -> None:
    with _rollback_hooks_lock:
        callbacks = _rollback_hooks.pop(conn, ())
    for callback in callbacks:
        callback()


def open_database(settings: Settings, url: str | None = None) -> Database:
    """Create the engine for `url` (default: the settings' URL) with its dialect adapter."""
    target = make_url(url or settings.url)
    adapter = adapter_for(target)
    engine = adapter.create_engine(target, settings)
    catalog = build_catalog(settings.data_schema, settings.backup_schema)
    return Database(engine, adapter, catalog, settings)
