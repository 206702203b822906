"""Database access: one SQLAlchemy Core code path, dialect specifics behind `DialectAdapter`."""

from __future__ import annotations

from backend.db.dialects import DialectAdapter, adapter_for
from backend.db.engine import Database, open_database

__all__ = ["Database", "DialectAdapter", "adapter_for", "open_database"]
