"""Tracking rows (one per file attempt) and audit events (one per step of a file's life).

The tracking row is created before any work starts and ends in exactly one final status;
`publish` flips it to ``loaded`` inside the same transaction as the data, so the row and the
table can never disagree.

Writes that only add detail on the way (`defer`: the schema report, the ``staged`` event) wait in
memory and ride along with the row's next write: a progress update, the publish transaction, or
the failure. A small file is thus tracked in four commits (claim, detection, publish, move)
instead of six; a large one still shows them within about MAX_DEFER_SECONDS, because a queued
write that old is written at the next call. What waits is lost if the process is killed (the
row is closed as ``interrupted`` anyway) or if the commit of the transaction that carried it
fails; it is queued again when that transaction rolls back.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.db.schema import STATUS_PROCESSING
from backend.errors import IngestError
from backend.masking import scrub
from backend.models import ColumnType, Detection, LoadRequest

#: Identifies this process in the `owner` column: host, pid and a per-start token.
OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def utcnow() -> datetime:
    """Naive UTC timestamp: stored the same way on all three databases."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_json(value: Any) -> str:
    """JSON for the tracking and event tables, with any URL masked and no known secret in it."""
    return scrub(json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")))


#: A deferred write older than this is written at the next call for its row instead of waiting.
MAX_DEFER_SECONDS = 1.0


@dataclass
class _Deferred:
    """Column values and events of one tracking row that wait for the row's next write."""

    since: float
    values: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any], datetime]] = field(default_factory=list)


# Per Database (weakly: a disposed test database takes its queue with it), per tracking id.
_deferred: weakref.WeakKeyDictionary[Database, dict[int, _Deferred]] = weakref.WeakKeyDictionary()
_deferred_lock = threading.Lock()


class ClaimConflictError(Exception):
    """Another attempt already holds the claim key (same content, same table)."""


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
        "status": STATUS_PROCESSING,
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


def add_event(
    conn: Connection, db: Database, tracking_id: int, event: str, details: dict[str, Any] | None = None
) -> None:
    """Append one audit event inside the caller's transaction (after the row's deferred writes)."""
    flush(conn, db, tracking_id)
    _insert_event(conn, db, tracking_id, event, details, utcnow())


def _insert_event(
    conn: Connection, db: Database, tracking_id: int, event: str, details: dict[str, Any] | None, at: datetime
) -> None:
    conn.execute(
        sa.insert(db.catalog.events).values(
            tracking_id=tracking_id, event=event, at=at, details=to_json(details or {})
        )
    )


def event(db: Database, tracking_id: int, name: str, details: dict[str, Any] | None = None) -> None:
    """Append one audit event in its own short transaction.

    When writes of the row are already waiting (`defer`) and are recent, the event joins them
    instead: it would otherwise cost a commit of its own a few milliseconds before theirs.
    """
    if _queue_behind_deferred(db, tracking_id, name, details):
        return
    with db.write() as conn:
        add_event(conn, db, tracking_id, name, details)


def defer(
    db: Database, tracking_id: int, *, event: tuple[str, dict[str, Any]] | None = None, **values: Any
) -> None:
    """Queue column values (and `event`) for the row's next write instead of committing them now.

    Only for detail that no final write sets (a final status, counts, the error): the queued
    values are applied inside whatever transaction writes the row next, possibly after that
    transaction's own UPDATE. Written now when the queue is older than MAX_DEFER_SECONDS.
    """
    now = time.monotonic()
    with _deferred_lock:
        queue = _deferred.setdefault(db, {})
        item = queue.get(tracking_id)
        if item is None:
            item = queue[tracking_id] = _Deferred(now)
        item.values.update(values)
        if event is not None:
            item.events.append((event[0], event[1], utcnow()))
        stale = now - item.since >= MAX_DEFER_SECONDS
    if stale:
        update(db, tracking_id)


def _queue_behind_deferred(db: Database, tracking_id: int, name: str, details: dict[str, Any] | None) -> bool:
    with _deferred_lock:
        item = _deferred.get(db, {}).get(tracking_id)
        if item is None or time.monotonic() - item.since >= MAX_DEFER_SECONDS:
            return False
        item.events.append((name, details or {}, utcnow()))
        return True


def flush(conn: Connection, db: Database, tracking_id: int) -> None:
    """Write the row's deferred values and events inside the caller's transaction.

    Should that transaction roll back, they are queued again (ahead of anything deferred since).
    """
    with _deferred_lock:
        item = _deferred.get(db, {}).pop(tracking_id, None)
    if item is None:
        return
    db.on_rollback(conn, lambda: _requeue(db, tracking_id, item))
    if item.values:
        t = db.catalog.tracking
        conn.execute(sa.update(t).where(t.c.id == tracking_id).values(**item.values))
    if item.events:
        # One statement for all of them (a multi-row INSERT where the dialect has one).
        conn.execute(
            sa.insert(db.catalog.events),
            [
                {"tracking_id": tracking_id, "event": name, "at": at, "details": to_json(details or {})}
                for name, details, at in item.events
            ],
        )


def _requeue(db: Database, tracking_id: int, item: _Deferred) -> None:
    with _deferred_lock:
        queue = _deferred.setdefault(db, {})
        newer = queue.get(tracking_id)
        if newer is not None:
            item.values.update(newer.values)
            item.events.extend(newer.events)
        queue[tracking_id] = item


def pending(db: Database, tracking_id: int) -> bool:
    """Whether writes of the row are waiting in this process (see `defer`)."""
    with _deferred_lock:
        return tracking_id in _deferred.get(db, {})


def update(
    db: Database, tracking_id: int, *, event: tuple[str, dict[str, Any]] | None = None, **values: Any
) -> None:
    """Set columns of a tracking row (and add `event`) in one short transaction; renews the heartbeat.

    The row's deferred writes go first, in the same transaction.
    """
    now = utcnow()
    values.setdefault("updated_at", now)
    values.setdefault("heartbeat_at", now)
    t = db.catalog.tracking
    with db.write() as conn:
        flush(conn, db, tracking_id)
        conn.execute(sa.update(t).where(t.c.id == tracking_id).values(**values))
        if event is not None:
            add_event(conn, db, tracking_id, *event)


def record_detection(
    db: Database, tracking_id: int, detection: Detection, table: str, columns: tuple[str, ...]
) -> None:
    update(
        db,
        tracking_id,
        table_name=table,
        detected_encoding=detection.encoding,
        detected_delimiter=detection.delimiter,
        detected_quotechar=detection.quotechar,
        detected_header=detection.header_rows > 0,
        detected_headers=to_json(list(detection.headers)),
        detection=to_json({**detection.to_dict(), "columns": list(columns)}),
        rows_estimated=detection.estimated_rows,
        event=("detected", detection.to_dict()),
    )


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
