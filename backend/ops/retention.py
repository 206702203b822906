"""Retention of backup versions: keep the newest KEEP_VERSIONS versions of each bkp table."""

from __future__ import annotations

import sqlalchemy as sa
import structlog

from backend.db.engine import Database

log = structlog.get_logger(__name__)


def prune_backups(db: Database, keep_versions: int) -> int:
    """Delete bkp rows of versions older than the newest `keep_versions`; returns rows deleted."""
    if keep_versions <= 0:
        return 0
    schema = db.catalog.backup_schema
    with db.read() as conn:
        names = sa.inspect(conn).get_table_names(schema=schema)
    deleted = 0
    for name in names:
        with db.write() as conn:
            table = db.reflect(conn, name, schema)
            if table is None or "_bkp_version" not in table.c:
                continue
            newest = conn.execute(sa.select(sa.func.max(table.c._bkp_version))).scalar()
            if newest is None:
                continue
            count = conn.execute(
                sa.delete(table).where(table.c._bkp_version <= newest - keep_versions)
            ).rowcount
        if count:
            log.info("pruned backup versions", table=f"{schema}.{name}", rows=count, kept=keep_versions)
            deleted += count
    return deleted
