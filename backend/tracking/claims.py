"""State changes of claimed attempts: closing orphans, reopening, heartbeats, cancel requests.

The claim key ``<table>:<sha256>`` (unique index) is what lets exactly one daemon load a file;
these functions are the only ones that change a claimed row outside a load.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.errors import IngestError, NotFoundError
from backend.tracking.events import add_event, utcnow
from backend.tracking.rows import OWNER, get
from backend.tracking.status import Status


def close_orphan(db: Database, tracking_id: int, reason: str, status: Status = Status.INTERRUPTED) -> bool:
    """Close a `processing` row whose owner is gone (or gave up); True if this call closed it."""
    t = db.catalog.tracking
    with db.write() as conn:
        closed = conn.execute(
            sa.update(t)
            .where(t.c.id == tracking_id, t.c.status == Status.PROCESSING.value)
            .values(
                status=status.value,
                claim_key=None,
                error_stage="recovery",
                error_message=f"{status.value}: {reason}; the file is loaded again when found",
                processed_at=utcnow(),
                updated_at=utcnow(),
            )
        ).rowcount
        if closed:
            add_event(conn, db, tracking_id, "recovered", {"reason": reason, "by": OWNER})
    return bool(closed)


def reopen_unmoved(db: Database, tracking_id: int) -> int:
    """A final row whose owner died before moving its file: ``interrupted``, so the file loads again."""
    t = db.catalog.tracking
    with db.write() as conn:
        changed = conn.execute(
            sa.update(t)
            .where(t.c.id == tracking_id, t.c.moved_to.is_(None))
            .values(
                status=Status.INTERRUPTED.value,
                claim_key=None,
                error_message="interrupted: the owner died before moving the file; it is tried again",
                updated_at=utcnow(),
            )
        ).rowcount
        if changed:
            add_event(conn, db, tracking_id, "recovered", {"reason": "not moved", "by": OWNER})
    return int(changed or 0)


def renew(db: Database, tracking_ids: list[int]) -> None:
    """Refresh the heartbeat of our in-flight rows so other daemons keep off them."""
    if not tracking_ids:
        return
    t = db.catalog.tracking
    with db.write() as conn:
        conn.execute(
            sa.update(t)
            .where(t.c.id.in_(tracking_ids), t.c.status == Status.PROCESSING.value)
            .values(heartbeat_at=utcnow())
        )


def request_cancel(db: Database, tracking_id: int) -> None:
    """Ask the daemon to stop load `tracking_id` (it rolls back; the file goes to error/).

    Raises:
        NotFoundError: no such load.
        IngestError: the load is not running (finished, or never started).
    """
    t = db.catalog.tracking
    with db.write() as conn:
        changed = conn.execute(
            sa.update(t)
            .where(t.c.id == tracking_id, t.c.status == Status.PROCESSING.value)
            .values(cancel_requested=True)
        ).rowcount
        if changed:
            add_event(conn, db, tracking_id, "cancel_requested", {})
    if not changed:
        row = get(db, tracking_id)
        if row is None:
            raise NotFoundError(f"no load with id {tracking_id}")
        raise IngestError(f"load {tracking_id} is not running (status {row.status})")


def cancel_requested(db: Database, tracking_id: int, conn: Connection | None = None) -> bool:
    """Whether an operator asked to cancel load `tracking_id`.

    Args:
        conn: read in this connection's transaction (the load's own, see `load.attempt`);
            by default in a short read of its own.
    """
    t = db.catalog.tracking
    query = sa.select(t.c.cancel_requested).where(t.c.id == tracking_id)
    if conn is not None:
        return bool(conn.execute(query).scalar())
    with db.read() as own:
        return bool(own.execute(query).scalar())
