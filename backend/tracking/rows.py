"""Tracking rows: one per attempt to load a file, from its claim to its final status.

The row is created before any work starts and ends in exactly one final status; the publish
flips it to ``loaded`` (`mark_loaded`) inside the same transaction as the data, so the row and
the table can never disagree.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.errors import ClaimConflictError, IngestError
from backend.models import ColumnType, Detection, LoadRequest
from backend.tracking.events import (
    add_event,
    defer,
    flush,
    insert_events,
    take_deferred,
    to_json,
    update,
    utcnow,
)
from backend.tracking.status import Status

#: Identifies this process in the `owner` column: host, pid and a per-start token.
OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class TrackingRow:
    """The columns of a tracking row that the pipeline and operators read back."""

    id: int
    file_name: str
    file_path: str
    status: str
    table_name: str | None
    load_type: str
    file_hash: str | None
    owner: str | None
    heartbeat_at: datetime | None
    moved_to: str | None
    claim_key: str | None
    error_message: str | None


def claim_key(table: str, sha256: str) -> str:
    return f"{table}:{sha256}"


def start(
    db: Database,
    request: LoadRequest,
    *,
    table: str | None,
    size: int | None,
    mtime: float | None,
    key: str | None = None,
) -> int:
    """Insert a `processing` row for one attempt and return its id (the load id).

    Raises:
        ClaimConflictError: `key` is already held by another row.
    """
    t = db.catalog.tracking
    now = utcnow()
    values = {
        "file_path": str(request.path),
        "file_name": request.path.name,
        "file_size": size,
        "file_mtime": mtime,
        "file_hash": request.sha256,
        "load_type": request.load_type.value,
        "table_name": table,
        "is_reference_data": request.is_reference,
        "reference_config_inserted": False,
        "status": Status.PROCESSING.value,
        "created_at": now,
        "updated_at": now,
        "claim_key": key,
        "owner": OWNER,
        "heartbeat_at": now,
        "cancel_requested": False,
    }
    try:
        with db.write() as conn:
            tracking_id = int(conn.execute(sa.insert(t).values(**values)).inserted_primary_key[0])
            add_event(conn, db, tracking_id, "claimed" if key else "started", {"file": str(request.path)})
    except IngestError as exc:
        if key is not None and isinstance(exc.__cause__, sa.exc.IntegrityError):
            raise ClaimConflictError(key) from exc
        raise
    return tracking_id


def record_detection(
    db: Database,
    tracking_id: int,
    detection: Detection,
    table: str,
    columns: tuple[str, ...],
    *,
    deferred: bool = False,
) -> None:
    """Record what detection found (columns and a ``detected`` event).

    Args:
        deferred: let it ride along with the row's next write (`defer`) instead of a commit of
            its own: for a small file that write (the publish, or the failure) comes a few
            milliseconds later, and a commit less per file is what a burst of them costs.
    """
    values: dict[str, Any] = {
        "table_name": table,
        "detected_encoding": detection.encoding,
        "detected_delimiter": detection.delimiter,
        "detected_quotechar": detection.quotechar,
        "detected_header": detection.header_rows > 0,
        "detected_headers": to_json(list(detection.headers)),
        "detection": to_json({**detection.to_dict(), "columns": list(columns)}),
        "rows_estimated": detection.estimated_rows,
    }
    event = ("detected", detection.to_dict())
    if deferred:
        defer(db, tracking_id, event=event, **values)
    else:
        update(db, tracking_id, event=event, **values)


def finish_failed(
    db: Database, tracking_id: int, status: str, error: BaseException, *, keep_claim: bool = False
) -> None:
    """Close an attempt that did not publish; releases its claim so the file can be tried again."""
    stage = getattr(error, "stage", "load")
    values: dict[str, Any] = {
        "status": status,
        "error_stage": stage,
        "error_message": str(error)[:4000],
        "processed_at": utcnow(),
    }
    if not keep_claim:
        values["claim_key"] = None
    t = db.catalog.tracking
    with db.write() as conn:
        flush(conn, db, tracking_id)
        conn.execute(sa.update(t).where(t.c.id == tracking_id).values(updated_at=utcnow(), **values))
        add_event(
            conn, db, tracking_id, "failed", {"status": status, "stage": stage, "error": str(error)[:1000]}
        )


def upsert_reference_cfg(conn: Connection, db: Database, table: str, tracking_id: int) -> bool:
    """Insert or refresh the table's Reference_Data_Cfg row; True when it was inserted."""
    cfg = db.catalog.reference_cfg
    now = utcnow()
    updated = conn.execute(
        sa.update(cfg)
        .where(cfg.c.table_name == table)
        .values(updated_at=now, is_active=True, last_tracking_id=tracking_id)
    ).rowcount
    if updated:
        return False
    conn.execute(
        sa.insert(cfg).values(
            table_name=table,
            created_at=now,
            updated_at=now,
            created_by=db.settings.created_by,
            is_active=True,
            last_tracking_id=tracking_id,
        )
    )
    return True


def get(db: Database, tracking_id: int) -> TrackingRow | None:
    t = db.catalog.tracking
    with db.read() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == tracking_id)).mappings().first()
    return _row(row) if row else None


def find_by_claim(db: Database, key: str) -> TrackingRow | None:
    t = db.catalog.tracking
    with db.read() as conn:
        row = conn.execute(sa.select(t).where(t.c.claim_key == key)).mappings().first()
    return _row(row) if row else None


def _row(m: Any) -> TrackingRow:
    return TrackingRow(
        id=int(m["id"]),
        file_name=m["file_name"],
        file_path=m["file_path"],
        status=m["status"],
        table_name=m["table_name"],
        load_type=m["load_type"],
        file_hash=m["file_hash"],
        owner=m["owner"],
        heartbeat_at=m["heartbeat_at"],
        moved_to=m["moved_to"],
        claim_key=m["claim_key"],
        error_message=m["error_message"],
    )


#: Event of a fullload whose rows were kept as a bkp version without becoming current.
KEPT_AS_VERSION = "kept_as_version"


@dataclass(frozen=True, slots=True)
class CurrentFullload:
    """The fullload whose rows a table holds now: its load id, file name and mtime at claim."""

    id: int
    file_name: str
    file_mtime: float | None


def current_fullload(db: Database, table: str) -> CurrentFullload | None:
    """The latest published fullload of `table` that became current (not one kept as a version)."""
    t, e = db.catalog.tracking, db.catalog.events
    kept = sa.exists().where(e.c.tracking_id == t.c.id, e.c.event == KEPT_AS_VERSION)
    with db.read() as conn:
        row = conn.execute(
            sa.select(t.c.id, t.c.file_name, t.c.file_mtime)
            .where(t.c.table_name == table, t.c.status == Status.LOADED.value, t.c.load_type == "fullload")
            .where(~kept)
            .order_by(t.c.processed_at.desc(), t.c.id.desc())
            .limit(1)
        ).first()
    return CurrentFullload(int(row.id), row.file_name, row.file_mtime) if row else None


def recorded_types(conn: Connection, db: Database, table: str) -> dict[str, ColumnType]:
    """The column types the table's latest published load recorded (empty when none did)."""
    t = db.catalog.tracking
    text = conn.execute(
        sa.select(t.c.column_types)
        .where(t.c.table_name == table, t.c.status == "loaded", t.c.column_types.isnot(None))
        .order_by(t.c.id.desc())
        .limit(1)
    ).scalar()
    return decode_types(text)


def types_of_load(conn: Connection, db: Database, load_id: int | None) -> dict[str, ColumnType]:
    """The column types load `load_id` recorded (empty when it recorded none)."""
    if load_id is None:
        return {}
    t = db.catalog.tracking
    return decode_types(conn.execute(sa.select(t.c.column_types).where(t.c.id == load_id)).scalar())


def encode_types(types: dict[str, ColumnType]) -> str:
    return to_json({name: column_type.to_dict() for name, column_type in types.items()})


def decode_types(text: str | None) -> dict[str, ColumnType]:
    if not text:
        return {}
    return {name: ColumnType.from_dict(value) for name, value in json.loads(text).items()}


def record_move(
    db: Database, tracking_id: int, moved: Path, event_name: str = "moved", **values: Any
) -> None:
    """Record where the file went, with any final column `values`, in one transaction."""
    t = db.catalog.tracking
    with db.write() as conn:
        conn.execute(
            sa.update(t)
            .where(t.c.id == tracking_id)
            .values(moved_to=str(moved), updated_at=utcnow(), **values)
        )
        add_event(conn, db, tracking_id, event_name, {"to": str(moved)})


def detection_of(db: Database, tracking_id: int) -> Any:
    """The detection a load recorded (for the error sidecar), or None."""
    t = db.catalog.tracking
    with contextlib.suppress(IngestError), db.read() as conn:
        value = conn.execute(sa.select(t.c.detection).where(t.c.id == tracking_id)).scalar()
        return json.loads(value) if value else None
    return None


def mark_loaded(
    conn: Connection,
    db: Database,
    tracking_id: int,
    *,
    events: Sequence[tuple[str, dict[str, Any]]] = (),
    **values: Any,
) -> None:
    """Flip the attempt to ``loaded`` inside the publish transaction (with its counts and profile)
    and append its audit `events` after the row's deferred writes.

    One UPDATE and one INSERT, whatever was deferred: the deferred values never name a column a
    final write sets (see `events.defer`), so they join the flip's own.
    """
    t = db.catalog.tracking
    now = utcnow()
    deferred, earlier = take_deferred(conn, db, tracking_id)
    conn.execute(
        sa.update(t)
        .where(t.c.id == tracking_id)
        .values(
            {
                **deferred,
                "status": Status.LOADED.value,
                "processed_at": now,
                "updated_at": now,
                "progress_percent": 100.0,
                **values,
            }
        )
    )
    insert_events(conn, db, tracking_id, [*earlier, *((name, details, now) for name, details in events)])


def release_replaced_keys(conn: Connection, db: Database, table: str, tracking_id: int) -> None:
    """A fullload replaced the table's content: earlier contents may be loaded again later.

    Not a file that is still in the drop folder (its move failed, or a crash came between commit
    and move): freeing its key would load it a second time when it is seen again.
    """
    t = db.catalog.tracking
    conn.execute(
        sa.update(t)
        .where(t.c.table_name == table, t.c.id != tracking_id, t.c.claim_key.isnot(None))
        .where(t.c.status.in_((Status.LOADED.value, Status.DUPLICATE.value)), t.c.moved_to.isnot(None))
        .values(claim_key=None)
    )


def probe_write(db: Database) -> None:
    """Raise unless the database accepts a write to the tracking table (one that changes no row)."""
    t = db.catalog.tracking
    with db.write() as conn:
        conn.execute(sa.update(t).where(t.c.id == -1).values(updated_at=t.c.updated_at))
