"""Which adapter serves a database URL."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import URL, make_url

from backend.db.adapter import UNKNOWN_FINGERPRINT, DialectAdapter
from backend.db.mssql import MSSQLAdapter
from backend.db.postgresql import PostgreSQLAdapter
from backend.db.sqlite import SQLiteAdapter
from backend.errors import ConfigError

__all__ = ["UNKNOWN_FINGERPRINT", "DialectAdapter", "adapter_for"]

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
