"""`history [TABLE]`: the loads of one table (or all), newest first, with what changed each time.

Each entry says how big the file was, how long it took, how many rows it brought (and the change
against the table's previous successful load), which bkp version kept the rows it replaced,
why it failed, and the names of the columns added or removed since the previous load.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import sqlalchemy as sa

from backend.db.engine import Database
from backend.errors import NotFoundError
from backend.naming import normalize_identifier
from backend.ops.render import iso_utc, seconds_between


def history(db: Database, table: str | None, limit: int = 20) -> list[dict[str, Any]]:
    """Loads of `table` (or of all tables), newest first.

    Raises:
        NotFoundError: `table` was never loaded (the message suggests a close name).
    """
    t = db.catalog.tracking
    query = sa.select(*_columns(t)).order_by(t.c.id.desc()).limit(limit)
    name = None
    if table:
        name = normalize_identifier(table) or table
        query = query.where(t.c.table_name == name)
    with db.read() as conn:
        found = [dict(r._mapping) for r in conn.execute(query)]
        if name is not None and not found:
            raise NotFoundError(f"no loads of table {name!r}{_suggest(conn, t, name)}")
        earlier = _previous_loads(conn, t, found)
    return [_entry(row) for row in _with_changes(found, earlier)]


def _columns(t: sa.Table) -> tuple[Any, ...]:
    return (
        t.c.id,
        t.c.file_name,
        t.c.file_size,
        t.c.table_name,
        t.c.load_type,
        t.c.status,
        t.c.rows_loaded,
        t.c.rows_rejected,
        t.c.backup_version,
        t.c.created_at,
        t.c.processed_at,
        t.c.error_stage,
        t.c.error_message,
        t.c.detection,
    )


def _suggest(conn: sa.Connection, t: sa.Table, name: str) -> str:
    known = [
        str(n)
        for (n,) in conn.execute(sa.select(t.c.table_name).where(t.c.table_name.isnot(None)).distinct())
    ]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {', '.join(close)}?"
    return (
        "; no table has been loaded yet" if not known else f"; tables loaded: {', '.join(sorted(known)[:20])}"
    )


def _previous_loads(
    conn: sa.Connection, t: sa.Table, rows: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """For each table shown, its last successful load before the oldest one shown (to compare with)."""
    oldest: dict[str, int] = {}
    for row in rows:
        if row["table_name"] is not None:
            oldest[row["table_name"]] = min(oldest.get(row["table_name"], row["id"]), row["id"])
    out: dict[str, dict[str, Any]] = {}
    for table, first_id in oldest.items():
        found = conn.execute(
            sa.select(*_columns(t))
            .where(t.c.table_name == table, t.c.status == "loaded", t.c.id < first_id)
            .order_by(t.c.id.desc())
            .limit(1)
        ).first()
        if found is not None:
            out[table] = dict(found._mapping)
    return out


def _file_columns(row: dict[str, Any]) -> list[str] | None:
    try:
        detection = json.loads(row.get("detection") or "null")
    except ValueError:
        return None
    columns = detection.get("columns") if isinstance(detection, dict) else None
    return [str(c) for c in columns] if isinstance(columns, list) else None


def _with_changes(rows: list[dict[str, Any]], earlier: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Add rows_change and the columns added/removed against the table's previous successful load."""
    previous = dict(earlier)
    for row in reversed(rows):  # oldest first
        row["columns"] = _file_columns(row)
        before = previous.get(row["table_name"])
        if before is not None and "columns" not in before:
            before["columns"] = _file_columns(before)
        if before is not None and row["columns"] is not None and before["columns"] is not None:
            # Also for a refused file: "columns do not match" is then explained by the names.
            old, new = before["columns"], row["columns"]
            row["columns_added"] = [c for c in new if c not in old]
            row["columns_removed"] = [c for c in old if c not in new]
            row["structure_changed"] = bool(row["columns_added"] or row["columns_removed"])
        if row["status"] != "loaded":
            continue
        if before is not None:
            row["rows_change"] = (row["rows_loaded"] or 0) - (before["rows_loaded"] or 0)
        previous[row["table_name"]] = row
    return rows


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "created_at": iso_utc(row["created_at"]),
        "finished_at": iso_utc(row["processed_at"]),
        "seconds": seconds_between(row["created_at"], row["processed_at"]),
        "status": row["status"],
        "load_type": row["load_type"],
        "table_name": row["table_name"],
        "file_name": row["file_name"],
        "file_size": row["file_size"],
        "rows_loaded": row["rows_loaded"],
        "rows_rejected": row["rows_rejected"],
        "rows_change": row.get("rows_change"),
        "backup_version": row["backup_version"],
        "columns": row.get("columns"),
        "columns_added": row.get("columns_added", []),
        "columns_removed": row.get("columns_removed", []),
        "structure_changed": row.get("structure_changed", False),
        "error_stage": row["error_stage"],
        "error_message": row["error_message"],
    }
