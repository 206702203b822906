"""Audit events (one per step of a file's life) and the deferred writes that ride along.

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
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.masking import scrub


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
    db: Database,
    tracking_id: int,
    *,
    event: tuple[str, dict[str, Any]] | None = None,
    wait: bool = False,
    **values: Any,
) -> None:
    """Queue column values (and `event`) for the row's next write instead of committing them now.

    Only for detail that no final write sets (a final status, counts, the error): the queued
    values are applied inside whatever transaction writes the row next, possibly after that
    transaction's own UPDATE. Written now when the queue is older than MAX_DEFER_SECONDS, unless
    `wait`: the caller holds a write lock another connection would wait for (SQLite).
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
    if stale and not wait:
        update(db, tracking_id)


def _queue_behind_deferred(db: Database, tracking_id: int, name: str, details: dict[str, Any] | None) -> bool:
    with _deferred_lock:
        item = _deferred.get(db, {}).get(tracking_id)
        if item is None or time.monotonic() - item.since >= MAX_DEFER_SECONDS:
            return False
        item.events.append((name, details or {}, utcnow()))
        return True


#: An audit event as written: its name, its details and when it happened.
Event = tuple[str, dict[str, Any], datetime]


def flush(conn: Connection, db: Database, tracking_id: int) -> None:
    """Write the row's deferred values and events inside the caller's transaction.

    Should that transaction roll back, they are queued again (ahead of anything deferred since).
    """
    values, events = take_deferred(conn, db, tracking_id)
    if values:
        t = db.catalog.tracking
        conn.execute(sa.update(t).where(t.c.id == tracking_id).values(**values))
    insert_events(conn, db, tracking_id, events)


def take_deferred(conn: Connection, db: Database, tracking_id: int) -> tuple[dict[str, Any], list[Event]]:
    """The row's deferred values and events, for the caller to write in `conn`'s transaction
    (with its own UPDATE and INSERT, see `rows.mark_loaded`); queued again if it rolls back."""
    with _deferred_lock:
        item = _deferred.get(db, {}).pop(tracking_id, None)
    if item is None:
        return {}, []
    db.on_rollback(conn, lambda: _requeue(db, tracking_id, item))
    return dict(item.values), list(item.events)


def insert_events(conn: Connection, db: Database, tracking_id: int, events: list[Event]) -> None:
    """Append audit events inside the caller's transaction, in their order, in one statement
    (a multi-row INSERT or the driver's executemany, where the dialect has one)."""
    if not events:
        return
    conn.execute(
        sa.insert(db.catalog.events),
        [
            {"tracking_id": tracking_id, "event": name, "at": at, "details": to_json(details or {})}
            for name, details, at in events
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
