"""How a running load learns that it must stop: an operator's cancel, or the daemon shutting down.

Three sources: the daemon's abort (SIGTERM past the grace period), a ``<file>.cancel`` marker
next to the file, and ``cancel_requested`` on the tracking row (``python -m backend cancel ID``).
Between batches the row is read at most once a second (a burst of small files would otherwise
pay a query per file to find the flag unset); the loader's two final checks, right before the
publish transaction and inside it just before its commit, always read it (issue 14, item 2),
through the load's own connection (`requested`: no connection of their own to check out, ping,
begin and roll back, twice per file). The final one runs after the publish flipped the row to
``loaded`` in that transaction, so a cancel either committed before the flip (which then
carries it, and so does the read: the load rolls back) or waits for the row's lock until the
commit, then finds the load committed and says "too late". On SQLite the load's transaction
holds the write lock, so no cancel can commit in between either way.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from backend import tracking
from backend.daemon.runtime import Runtime
from backend.errors import CancelledError, ShutdownError
from backend.load.context import CancelCheck

CANCEL_SUFFIX = ".cancel"
#: Seconds between two looks at the tracking row while batches stream.
DB_CHECK_EVERY_SECONDS = 1.0


def cancel_checker(rt: Runtime, path: Path) -> CancelCheck:
    """The `LoadHooks.check_cancel` of one file's load."""
    marker = path.with_name(path.name + CANCEL_SUFFIX)
    # The first look at the database comes a second into the load, not at its first batch.
    last_db_check = [time.monotonic()]

    def check(tracking_id: int, *, final: bool = False, requested: bool | None = None) -> None:
        if rt.abort.is_set():
            raise ShutdownError(f"{path.name}: daemon stopping; rolled back, will load on next start")
        if marker.exists():
            raise CancelledError(f"{path.name}: cancelled by operator ({marker.name})", stage="cancel")
        now = time.monotonic()
        if final or now - last_db_check[0] >= DB_CHECK_EVERY_SECONDS:
            last_db_check[0] = now
            if requested is None:
                requested = tracking.cancel_requested(rt.db, tracking_id)
            if requested:
                raise CancelledError(
                    f"{path.name}: cancelled by operator (cancel {tracking_id}); rolled back, "
                    "the table is unchanged",
                    stage="cancel",
                )

    return check


def remove_cancel_marker(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.with_name(path.name + CANCEL_SUFFIX).unlink()
