"""Retention of versions: keep the newest KEEP_VERSIONS kept versions of each table, drop the rest.

A version is a whole table, so retention drops tables instead of deleting rows.
"""

from __future__ import annotations

import sqlalchemy as sa
import structlog

from backend.db.engine import Database
from backend.load import versions

log = structlog.get_logger(__name__)


def prune_backups(db: Database, keep_versions: int) -> int:
    """Drop the kept versions of every table beyond the newest `keep_versions`; returns how many."""
    if keep_versions <= 0:
        return 0
    v = db.catalog.versions
    with db.read() as conn:
        tables = [name for (name,) in conn.execute(sa.select(sa.distinct(v.c.table_name)))]
    dropped = 0
    for table in tables:
        with db.write() as conn:
            gone = versions.prune(conn, db, table, keep_versions)
        if gone:
            log.info("dropped old versions", table=table, versions=gone, kept=keep_versions)
            dropped += len(gone)
    return dropped
