"""Which adapter serves a database URL."""

from __future__ import annotations

import importlib

from sqlalchemy.engine import URL, make_url

from backend.db.adapter import UNKNOWN_FINGERPRINT, DialectAdapter
from backend.errors import ConfigError

__all__ = ["UNKNOWN_FINGERPRINT", "DialectAdapter", "adapter_for"]

#: Imported only for the database in use: PostgreSQL's brings pyarrow and numpy (0.2 s of a
#: small load's start-up on SQLite, measured), SQL Server's pyodbc.
_ADAPTERS: dict[str, tuple[str, str]] = {
    "sqlite": ("backend.db.sqlite", "SQLiteAdapter"),
    "postgresql": ("backend.db.postgresql", "PostgreSQLAdapter"),
    "mssql": ("backend.db.mssql", "MSSQLAdapter"),
}


def adapter_for(url: str | URL) -> DialectAdapter:
    """The adapter for a URL's backend, or ConfigError for an unsupported one."""
    try:
        backend = make_url(url).get_backend_name()
    except Exception:  # noqa: BLE001 - never echo a URL that may hold a password
        raise ConfigError("DATABASE_URL is not a valid SQLAlchemy URL") from None
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ADAPTERS:
        raise ConfigError(f"unsupported database {backend!r}; use sqlite, postgresql or mssql+pyodbc")
    module, name = _ADAPTERS[backend]
    adapter: DialectAdapter = getattr(importlib.import_module(module), name)()
    return adapter
