"""Claim a stable file in the tracking table so that exactly one daemon loads it.

The claim key is ``<table>:<sha256>`` under a unique index: two daemons that see the same file
insert the same key and the database lets one win (no lock files, works on all three
databases). A key stays taken while a load runs and after it succeeds, which is also how
identical content is recognised as a duplicate; a failed attempt releases it so a retry can
claim again, and a successful fullload releases the keys of the table's earlier loads, so that
re-dropping yesterday's file after today's is a real change, not a duplicate.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil
import sqlalchemy as sa
import structlog

from backend import tracking
from backend.db.engine import Database
from backend.db.schema import STATUS_PROCESSING
from backend.errors import DatabaseUnavailableError
from backend.loader import open_regular_file
from backend.models import LoadRequest
from backend.tracking import ClaimConflictError, TrackingRow, utcnow

log = structlog.get_logger(__name__)


def hash_file(path: Path) -> tuple[str, int, float]:
    """SHA-256, size and mtime of a file, read without following symlinks."""
    digest = hashlib.sha256()
    with open_regular_file(path) as f:
        info = os.fstat(f.fileno())
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest(), info.st_size, info.st_mtime


@dataclass(frozen=True, slots=True)
class Claimed:
    """We hold the claim; load the file under this tracking id."""

    tracking_id: int


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    """Another live process is loading the same content; leave the file alone for now."""

    holder: TrackingRow


@dataclass(frozen=True, slots=True)
class AlreadyLoaded:
    """The same content was already loaded into the table.

    `recovered` is True when that load was this very file and its owner died between the commit
    and the move: the file only needs moving to processed/.
    """

    holder: TrackingRow
    recovered: bool


ClaimOutcome = Claimed | HeldElsewhere | AlreadyLoaded


def owner_alive(owner: str | None, heartbeat_age_seconds: float | None, lease_seconds: float) -> bool:
    """Whether the process named in `owner` may still be working on its row."""
    if not owner:
        return False
    if owner == tracking.OWNER:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        # Same machine: ask the OS instead of waiting for the lease to run out.
        pid = int(pid_text)
        return pid != os.getpid() and psutil.pid_exists(pid)
    return heartbeat_age_seconds is not None and heartbeat_age_seconds < lease_seconds


def claim(db: Database, request: LoadRequest, table: str, size: int, mtime: float) -> ClaimOutcome:
    """Try to claim `request.path` (hashed as `request.sha256`) for loading into `table`."""
    if request.sha256 is None:
        raise ValueError("claim() needs the file's SHA-256")
    key = tracking.claim_key(table, request.sha256)
    for _attempt in range(3):
        try:
            return Claimed(tracking.start(db, request, table=table, size=size, mtime=mtime, key=key))
        except ClaimConflictError:
            holder = tracking.find_by_claim(db, key)
        if holder is None:
            continue  # released between our insert and our look-up: try again
        age = (utcnow() - holder.heartbeat_at).total_seconds() if holder.heartbeat_at else None
        alive = owner_alive(holder.owner, age, db.settings.lease_seconds)
        if holder.status == STATUS_PROCESSING:
            if alive:
                return HeldElsewhere(holder)
            recover_row(db, holder.id, "owner stopped while loading")
            continue
        same_file = holder.file_path == str(request.path) and holder.moved_to is None
        if same_file and alive:
            # Its owner loaded this very file and is about to move it: not ours to touch.
            return HeldElsewhere(holder)
        return AlreadyLoaded(holder, recovered=same_file)
    raise DatabaseUnavailableError(f"{request.path.name}: claim kept changing hands; will try again")


def recover_row(db: Database, tracking_id: int, reason: str) -> bool:
    """Close a `processing` row whose owner is gone; True if this call closed it."""
    t = db.catalog.tracking
    with db.write() as conn:
        closed = conn.execute(
            sa.update(t)
            .where(t.c.id == tracking_id, t.c.status == STATUS_PROCESSING)
            .values(
                status="interrupted",
                claim_key=None,
                error_stage="recovery",
                error_message=f"interrupted: {reason}; the file is loaded again when found",
                processed_at=utcnow(),
                updated_at=utcnow(),
            )
        ).rowcount
        if closed:
            tracking.add_event(conn, db, tracking_id, "recovered", {"reason": reason, "by": tracking.OWNER})
    return bool(closed)


def recover_stale(db: Database) -> int:
    """Close every `processing` row whose owner is dead or silent past the lease; returns the count."""
    t = db.catalog.tracking
    with db.read() as conn:
        rows = conn.execute(
            sa.select(t.c.id, t.c.owner, t.c.heartbeat_at).where(t.c.status == STATUS_PROCESSING)
        ).all()
    now = utcnow()
    count = 0
    for row in rows:
        age = (now - row.heartbeat_at).total_seconds() if row.heartbeat_at else None
        if not owner_alive(row.owner, age, db.settings.lease_seconds) and recover_row(
            db, row.id, "owner stopped while loading"
        ):
            log.warning("recovered an interrupted load", tracking_id=row.id, owner=row.owner)
            count += 1
    return count


def renew(db: Database, tracking_ids: list[int]) -> None:
    """Refresh the heartbeat of our in-flight rows so other daemons keep off them."""
    if not tracking_ids:
        return
    t = db.catalog.tracking
    with db.write() as conn:
        conn.execute(
            sa.update(t)
            .where(t.c.id.in_(tracking_ids), t.c.status == STATUS_PROCESSING)
            .values(heartbeat_at=utcnow())
        )
