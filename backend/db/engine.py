"""Open the database once per process and translate driver errors into the product's errors."""

from __future__ import annotations

import socket
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

# What a driver error means decides what happens to the file: an error of the environment
# (the server cannot be found, refuses or drops the connection, times out, shuts down, has no
# connection slot left, or chose this transaction as a deadlock or serialisation victim) leaves the
# file where it is and retries; only an error the file's content caused sends it to error/. Each
# meaning is recognised by SQLSTATE (PostgreSQL, ODBC), by SQL Server's native error number, by
# the Python exception in the chain (psycopg resolves host names itself and raises
# `socket.gaierror` inside its OperationalError), and by the driver's words as a last resort
# (SQLite has no SQLSTATE; libpq reports a failed connection in text only).
_TRANSIENT_SQLSTATES: dict[str, str] = {
    "40001": "serialisation failure", "40P01": "deadlock",
    "55P03": "lock timeout", "57014": "timeout",
    "57P01": "server shutting down", "57P02": "server shutting down", "57P03": "server shutting down",
    "53000": "server out of resources", "53100": "disk full", "53200": "server out of memory",
    "53300": "too many connections",
    # Read-only or revoked writes are an environment problem too, never the file's fault.
    "25006": "database read-only", "42501": "write permission revoked",
    "HYT00": "timeout", "HYT01": "timeout",
}  # fmt: skip
#: SQLSTATE classes that all mean the connection failed or was lost (08001, 08006, 08S01, ...).
_TRANSIENT_SQLSTATE_CLASSES = {"08": "connection failed or lost"}
_TRANSIENT_MSSQL_CODES: dict[str, str] = {
    "1205": "deadlock", "1204": "out of locks", "1222": "lock timeout",
    "4060": "database not available", "40613": "database not available", "40501": "server busy",
    "40143": "connection lost", "49918": "server busy", "49919": "server busy", "49920": "server busy",
    "6005": "server shutting down", "17809": "too many connections",
    "10928": "too many connections", "10929": "too many connections",
    "10053": "connection refused or reset", "10054": "connection refused or reset",
    "10060": "timeout", "11001": "name resolution",
}  # fmt: skip
#: Driver words, by meaning (checked lower-cased, after the codes).
_TRANSIENT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("name resolution", ("name or service not known", "temporary failure in name resolution",
                         "nodename nor servname", "could not translate host name",
                         "no address associated with hostname", "getaddrinfo failed",
                         "failed to resolve host", "no such host is known", "name resolution")),
    ("connection refused or reset", ("connection refused", "connection reset", "broken pipe",
                                     "connection aborted", "network is unreachable",
                                     "no route to host", "could not connect")),
    ("timeout", ("timeout expired", "timed out", "statement timeout", "lock timeout")),
    ("server shutting down", ("the database system is", "terminating connection",
                              "server closed the connection", "shutdown is in progress")),
    ("too many connections", ("too many clients", "too many connections",
                              "remaining connection slots are reserved",
                              "maximum number of user connections")),
    ("deadlock", ("deadlock detected", "deadlock victim")),
    ("serialisation failure", ("could not serialize access",)),
    ("connection lost", ("connection is closed", "lost connection", "ssl syscall",
                         "consuming input failed", "communication link failure")),
    ("database busy", ("database is locked", "database is busy")),
    ("disk full or read-only", ("disk i/o error", "unable to open database", "database or disk is full",
                                "no space left on device", "readonly database")),
)  # fmt: skip


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, the driver error it wraps (`orig`), and their causes and contexts, each once."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 16:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]
    return seen


def _sqlstate(error: BaseException) -> str | None:
    sqlstate = getattr(error, "sqlstate", None) or getattr(getattr(error, "diag", None), "sqlstate", None)
    args = getattr(error, "args", None)
    if sqlstate is None and args and isinstance(args[0], str) and len(args[0]) == 5:
        sqlstate = args[0]  # pyodbc puts the SQLSTATE first
    return str(sqlstate) if sqlstate else None


def transient_reason(exc: BaseException) -> str | None:
    """What makes a database error worth retrying ("name resolution", "deadlock", ...), or None.

    None means the error is taken to be caused by the file's content (a value that does not fit,
    a constraint, too many columns): the file goes to error/.
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return "connection lost"
    chain = _chain(exc)
    for error in chain:
        sqlstate = _sqlstate(error)
        if sqlstate in _TRANSIENT_SQLSTATES:
            return _TRANSIENT_SQLSTATES[sqlstate]
        if sqlstate and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES:
            return _TRANSIENT_SQLSTATE_CLASSES[sqlstate[:2]]
    for error in chain:
        if isinstance(error, socket.gaierror):
            return "name resolution"
        if isinstance(error, ConnectionError):
            return "connection refused or reset"
        if isinstance(error, TimeoutError | sa.exc.TimeoutError):
            return "timeout"
        if isinstance(error, sa.exc.DisconnectionError):
            return "connection lost"
    for error in chain:
        text = str(error).lower()
        for code, reason in _TRANSIENT_MSSQL_CODES.items():
            if f"({code})" in text or f" {code} " in text:
                return reason
        for reason, words in _TRANSIENT_WORDS:
            if any(word in text for word in words):
                return reason
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth retrying (see `transient_reason`)."""
    return transient_reason(exc) is not None


def translate_error(exc: BaseException, *, stage: str = "database") -> IngestError:
    """Map a SQLAlchemy/driver error to DatabaseUnavailableError (retry) or RowError (file is bad)."""
    if isinstance(exc, IngestError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    # Only the driver's first line: SQLAlchemy's message repeats the statement and parameters,
    # which can carry data and are useless to an operator.
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else exc.__class__.__name__
    reason = transient_reason(exc)
    if reason is not None:
        return DatabaseUnavailableError(f"database unavailable ({reason}): {message}", stage=stage)
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
    catalog = build_catalog(settings.data_schema, settings.backup_schema, (adapter.name,))
    return Database(engine, adapter, catalog, settings)
