"""Operator view of stored load profiles: `python -m backend profile TABLE [--load ID]`."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from backend.db.engine import Database
from backend.errors import NotFoundError
from backend.naming import normalize_identifier


def read_profile(db: Database, table: str, load_id: int | None = None) -> dict[str, Any]:
    """The stored profile of load `load_id`, or of the table's last successful load.

    Raises:
        NotFoundError: no such load, or it has no profile.
    """
    name = normalize_identifier(table) or table
    t = db.catalog.tracking
    query = sa.select(
        t.c.id, t.c.file_name, t.c.status, t.c.load_type, t.c.rows_loaded, t.c.created_at, t.c.profile
    )
    if load_id is not None:
        query = query.where(t.c.id == load_id, t.c.table_name == name)
    else:
        query = query.where(t.c.table_name == name, t.c.status == "loaded", t.c.profile.isnot(None))
    with db.read() as conn:
        row = conn.execute(query.order_by(t.c.id.desc()).limit(1)).first()
    if row is None:
        if load_id is not None:
            raise NotFoundError(f"no load {load_id} of table {name}")
        raise NotFoundError(f"no successful load of table {name} has a profile")
    if not row.profile:
        raise NotFoundError(f"load {row.id} ({row.status}) has no profile")
    return {
        "load_id": row.id,
        "table": name,
        "file_name": row.file_name,
        "status": row.status,
        "load_type": row.load_type,
        "rows_loaded": row.rows_loaded,
        "created_at": str(row.created_at),
        "profile": json.loads(row.profile),
    }


def format_profile(entry: dict[str, Any]) -> str:
    """A profile as text for the terminal: one header line, then one line per column."""
    profile = entry["profile"]
    lines = [
        f"load {entry['load_id']} of {entry['table']} ({entry['status']}, {entry['load_type']}): "
        f"{entry['file_name']}, {profile.get('rows')} rows",
        f"fingerprint {profile.get('fingerprint')}"
        + (
            f" (previous {profile['previous_fingerprint']}"
            + (", structure changed)" if profile.get("structure_changed") else ", unchanged)")
            if profile.get("previous_fingerprint")
            else " (first load)"
        ),
    ]
    for col in profile.get("columns", []):
        parts = [f"{col['name']}: {col['type']}"]
        if col.get("looks_like"):
            parts[0] += f" (looks {col['looks_like']})"
        parts.append(f"nulls={col.get('nulls')}")
        parts.append(f"distinct={'~' if col.get('distinct_approximate') else ''}{col.get('distinct')}")
        for key in ("min", "max", "mean", "stddev", "max_length", "pattern", "sensitive"):
            if col.get(key) is not None:
                parts.append(f"{key}={col[key]}")
        if col.get("top"):
            parts.append("top=" + ", ".join(f"{v!r}:{n}" for v, n in col["top"]))
        lines.append("  " + " ".join(parts))
    validation = profile.get("validation") or {}
    for item in validation.get("warnings", []):
        lines.append(f"  warning: {item}")
    return "\n".join(lines)
