"""Operator views and actions on the tracking table: status, cancel (history: `ops.history`,
retry: `ops.retry`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from backend import tracking
from backend.daemon import folders as lifecycle
from backend.db.engine import Database
from backend.ops.render import iso_utc, seconds_between

#: The command an operator runs to put a refused file back (printed next to each error).
RETRY_COMMAND = "refdata-monitor retry {id}"


def db_status(db: Database, *, recent: int = 20) -> dict[str, Any]:
    """In-flight loads with progress, the last results and the last errors, from the database.

    Timestamps are ISO 8601 UTC (``...Z``); each error that left its file in an error/ folder
    carries the exact `retry` command.
    """
    t = db.catalog.tracking
    cols = (
        t.c.id,
        t.c.file_name,
        t.c.file_size,
        t.c.table_name,
        t.c.load_type,
        t.c.status,
        t.c.rows_done,
        t.c.rows_estimated,
        t.c.progress_percent,
        t.c.rows_loaded,
        t.c.owner,
        t.c.created_at,
        t.c.processed_at,
        t.c.error_stage,
        t.c.error_message,
        t.c.moved_to,
    )
    with db.read() as conn:
        in_flight = conn.execute(
            sa.select(*cols).where(t.c.status == tracking.Status.PROCESSING.value).order_by(t.c.id)
        ).all()
        last = conn.execute(
            sa.select(*cols)
            .where(t.c.status != tracking.Status.PROCESSING.value)
            .order_by(t.c.id.desc())
            .limit(recent)
        ).all()
        errors = conn.execute(
            sa.select(*cols)
            .where(t.c.status.in_(("error", "cancelled", "interrupted")))
            .order_by(t.c.id.desc())
            .limit(recent)
        ).all()
        counts: dict[str, int] = {
            str(status): int(n)
            for status, n in conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))
        }
    return {
        "in_flight": [_row(r) for r in in_flight],
        "last_results": [_row(r) for r in last],
        "last_errors": [_row(r) for r in errors],
        "counts": {k: int(v) for k, v in counts.items()},
    }


def _row(r: Any) -> dict[str, Any]:
    row = {k: iso_utc(v) for k, v in r._mapping.items()}
    row["seconds"] = seconds_between(r.created_at, r.processed_at)
    moved = Path(r.moved_to) if r.moved_to else None
    in_error = moved is not None and moved.parent.name == lifecycle.ERROR
    row["retry_command"] = RETRY_COMMAND.format(id=r.id) if in_error and r.status == "error" else None
    return row


def request_cancel(db: Database, tracking_id: int) -> None:
    """Ask the daemon to stop load `tracking_id` (see `tracking.request_cancel`)."""
    tracking.request_cancel(db, tracking_id)
