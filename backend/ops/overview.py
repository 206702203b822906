"""Read-only summaries of the tracking table for the status page and the metrics: per-table
freshness and loads per hour. Every query is bounded, so a page view stays cheap on a table
with millions of rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from backend.db.engine import Database
from backend.ops.render import as_utc, iso_utc

#: Outcomes drawn in the loads-per-hour chart (attempts still running or retried are not outcomes).
CHART_OUTCOMES = ("loaded", "duplicate", "error", "cancelled")
#: At most this many finished rows are read for the chart (a burst of 10,000 files in a day is fine).
CHART_MAX_ROWS = 50_000


def table_freshness(db: Database, *, limit: int = 100) -> list[dict[str, Any]]:
    """Each table's last successful load (when, rows, file), most recently refreshed first.

    Returns:
        ``[{"table", "tracking_id", "file_name", "load_type", "rows_loaded", "finished_at",
        "finished_at_epoch"}]``; ``finished_at`` is ISO 8601 UTC.
    """
    t = db.catalog.tracking
    last = (
        sa.select(sa.func.max(t.c.id).label("id"))
        .where(t.c.status == "loaded", t.c.table_name.isnot(None))
        .group_by(t.c.table_name)
        .subquery()
    )
    query = (
        sa.select(t.c.id, t.c.table_name, t.c.file_name, t.c.load_type, t.c.rows_loaded, t.c.processed_at)
        .join(last, last.c.id == t.c.id)
        .order_by(t.c.processed_at.desc())
        .limit(limit)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    out = []
    for r in rows:
        moment = as_utc(r.processed_at)
        out.append(
            {
                "table": r.table_name,
                "tracking_id": r.id,
                "file_name": r.file_name,
                "load_type": r.load_type,
                "rows_loaded": r.rows_loaded,
                "finished_at": iso_utc(r.processed_at),
                "finished_at_epoch": moment.timestamp() if moment is not None else None,
            }
        )
    return out


def loads_per_hour(db: Database, *, hours: int = 24, now: datetime | None = None) -> list[dict[str, Any]]:
    """Finished files per hour over the last `hours` hours, oldest hour first, by outcome.

    Returns:
        ``[{"hour": "2024-01-31T08:00:00Z", "loaded": 3, "duplicate": 0, "error": 1, "cancelled": 0}]``
        with one entry per hour, empty hours included.
    """
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    t = db.catalog.tracking
    query = (
        sa.select(t.c.processed_at, t.c.status)
        .where(t.c.processed_at >= start.replace(tzinfo=None), t.c.status.in_(CHART_OUTCOMES))
        .order_by(t.c.id.desc())
        .limit(CHART_MAX_ROWS)
    )
    buckets = {start + timedelta(hours=i): dict.fromkeys(CHART_OUTCOMES, 0) for i in range(hours)}
    with db.read() as conn:
        for processed_at, status in conn.execute(query):
            moment = as_utc(processed_at)
            if moment is None:
                continue
            hour = moment.replace(minute=0, second=0, microsecond=0)
            if hour in buckets:
                buckets[hour][str(status)] += 1
    return [{"hour": iso_utc(hour), **counts} for hour, counts in buckets.items()]
