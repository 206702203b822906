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
from datetime import timedelta
from pathlib import Path

import psutil
import sqlalchemy as sa
import structlog

from backend import tracking
from backend.db.engine import Database
from backend.errors import ClaimConflictError, DatabaseUnavailableError, FileChangedError, FileRejectedError
from backend.files import open_regular_file
from backend.models import LoadRequest
from backend.tracking import Status, TrackingRow, utcnow

log = structlog.get_logger(__name__)


def hash_file(path: Path) -> tuple[str, int, float]:
    """SHA-256, size and mtime of a file, read without following symlinks.

    Raises:
        FileRejectedError: not a regular file, unreadable, or a hard link (another name shares
            its data: it could expose a file the uploader may not read).
        FileChangedError: the file disappeared.
    """
    digest = hashlib.sha256()
    with open_regular_file(path, buffering=0) as f:
        info = os.fstat(f.fileno())
        if info.st_nlink > 1:
            raise FileRejectedError(
                f"{path.name}: has {info.st_nlink} hard links; a hard-linked file may be another "
                "file's data and is not loaded (copy it instead)",
                path=path,
                stage="read",
            )
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
        if holder.status == Status.PROCESSING:
            if alive:
                return HeldElsewhere(holder)
            recover_row(db, holder.id, "owner stopped while loading")
            continue
        same_file = holder.file_path == str(request.path) and holder.moved_to is None
        if same_file and alive and holder.owner != tracking.OWNER:
            # Its owner loaded this very file and is about to move it: not ours to touch. Our
            # own such row means our move failed earlier (folder not writable, share gone).
            return HeldElsewhere(holder)
        return AlreadyLoaded(holder, recovered=same_file)
    raise DatabaseUnavailableError(f"{request.path.name}: claim kept changing hands; will try again")


def recover_row(db: Database, tracking_id: int, reason: str, status: Status = Status.INTERRUPTED) -> bool:
    """Close a `processing` row whose owner is gone (or gave up); True if this call closed it."""
    return tracking.close_orphan(db, tracking_id, reason, status)


def recover_stale(db: Database) -> int:
    """Close every `processing` row whose owner is dead or silent past the lease; returns the count."""
    t = db.catalog.tracking
    with db.read() as conn:
        rows = conn.execute(
            sa.select(t.c.id, t.c.owner, t.c.heartbeat_at).where(t.c.status == Status.PROCESSING.value)
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


#: How far back `reconcile_moves` looks for final rows that never recorded where their file went.
RECONCILE_DAYS = 7


def reconcile_moves(db: Database) -> int:
    """Finish the bookkeeping of attempts whose owner died between a final status and the file's move.

    A kill can land between the commit of a final status and the move (the file is still in the
    drop folder) or between the move and the row that records it (the file is in processed/ or
    error/ but the row does not say so). For each such row of a dead owner:

    - the file is still in its drop folder: a `loaded` row is left alone (the next scan finds
      the file, recognises the load and only moves it); any other final row did not finish, so
      it becomes `interrupted` and the file is tried again;
    - the file has gone: its copy in processed/ or error/ is found (by the sidecar's tracking id,
      or by name and SHA-256) and recorded.

    Returns:
        The number of rows updated.
    """
    t = db.catalog.tracking
    since = utcnow() - timedelta(days=RECONCILE_DAYS)
    with db.read() as conn:
        rows = conn.execute(
            sa.select(
                t.c.id, t.c.file_path, t.c.file_hash, t.c.status, t.c.owner, t.c.heartbeat_at, t.c.updated_at
            ).where(
                t.c.status.in_(Status.settled()),
                t.c.moved_to.is_(None),
                t.c.updated_at >= since,
            )
        ).all()
    now = utcnow()
    done = 0
    for row in rows:
        age = (now - row.heartbeat_at).total_seconds() if row.heartbeat_at else None
        if owner_alive(row.owner, age, db.settings.lease_seconds):
            continue
        path = Path(row.file_path)
        if os.path.lexists(path):
            if row.status != Status.LOADED:
                done += tracking.reopen_unmoved(db, row.id)
            continue
        found = _find_moved(db, path, row.id, row.status, row.file_hash)
        if found is not None:
            tracking.record_move(db, row.id, found, event_name="move_reconciled")
            log.warning("recorded where a file went before its owner died", tracking_id=row.id, to=str(found))
            done += 1
    return done


def _find_moved(db: Database, path: Path, tracking_id: int, status: str, sha256: str | None) -> Path | None:
    """The file `path` became in processed/ or error/, if it can be told apart from every other one."""
    from backend.daemon import folders as lifecycle

    to_error = status not in ("loaded", "duplicate")
    sub = path.parent / (lifecycle.ERROR if to_error else lifecycle.PROCESSED)
    try:
        with os.scandir(sub) as entries:
            names = [
                e.name
                for e in entries
                if lifecycle.is_moved_name(e.name, path.name) and e.is_file(follow_symlinks=False)
            ]
    except OSError:
        return None
    if not names:
        return None
    candidates = [str(sub / name) for name in sorted(names)]
    t = db.catalog.tracking
    with db.read() as conn:
        taken = {v for (v,) in conn.execute(sa.select(t.c.moved_to).where(t.c.moved_to.in_(candidates)))}
    for entry in candidates:
        if entry in taken:
            continue
        candidate = Path(entry)
        if to_error:
            if (lifecycle.read_sidecar(candidate) or {}).get("tracking_id") == tracking_id:
                return candidate
            continue
        if sha256 is None:
            continue
        try:
            same, _, _ = hash_file(candidate)
        except (FileRejectedError, FileChangedError):
            continue
        if same == sha256:
            return candidate
    return None


def renew(db: Database, tracking_ids: list[int]) -> None:
    """Refresh the heartbeat of our in-flight rows so other daemons keep off them."""
    tracking.renew(db, tracking_ids)
