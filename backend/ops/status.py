"""Operator views and actions on the tracking table: status, history, cancel (retry: `ops.retry`)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from backend import tracking
from backend.db.engine import Database


def _iso(value: Any) -> Any:
    return value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "isoformat") else value


def db_status(db: Database, *, recent: int = 20) -> dict[str, Any]:
    """In-flight loads with progress, the last results and the last errors, from the database."""
    t = db.catalog.tracking
    cols = (
        t.c.id,
        t.c.file_name,
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
        t.c.error_message,
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
    return {k: _iso(v) for k, v in r._mapping.items()}


def history(db: Database, table: str | None, limit: int = 20) -> list[dict[str, Any]]:
    """Loads of one table (or all), newest first, with row-count and structure changes."""
    t = db.catalog.tracking
    query = (
        sa.select(
            t.c.id,
            t.c.file_name,
            t.c.table_name,
            t.c.load_type,
            t.c.status,
            t.c.rows_loaded,
            t.c.rows_rejected,
            t.c.backup_version,
            t.c.created_at,
            t.c.processed_at,
            t.c.error_message,
            t.c.profile,
        )
        .order_by(t.c.id.desc())
        .limit(limit)
    )
    if table:
        query = query.where(t.c.table_name == table)
    with db.read() as conn:
        rows = [_row(r) for r in conn.execute(query)]
    for row in rows:
        profile = json.loads(row.pop("profile", None) or "{}")
        row["fingerprint"] = profile.get("fingerprint")
        # Recorded at load time, so the oldest load shown still compares with its predecessor.
        row["previous_fingerprint"] = profile.get("previous_fingerprint")
    # Show what changed against the previous successful load of the same table.
    previous: dict[str, dict[str, Any]] = {}
    for row in reversed(rows):
        if row["status"] != "loaded":
            continue
        before = previous.get(row["table_name"])
        if before is not None:
            row["rows_change"] = (row["rows_loaded"] or 0) - (before["rows_loaded"] or 0)
            row["previous_fingerprint"] = row["previous_fingerprint"] or before["fingerprint"]
        if row["previous_fingerprint"] is not None and row["fingerprint"] is not None:
            row["structure_changed"] = row["fingerprint"] != row["previous_fingerprint"]
        previous[row["table_name"]] = row
    return rows


def request_cancel(db: Database, tracking_id: int) -> None:
    """Ask the daemon to stop load `tracking_id` (see `tracking.request_cancel`)."""
    tracking.request_cancel(db, tracking_id)
