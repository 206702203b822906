"""`cancel`: ask the daemon to stop a load, wait for its final status, and say how it ended.

A cancel is honoured until the commit (see `backend.daemon.cancel`): the load either rolls back
(``cancelled``: the table is unchanged, the file goes to error/) or had already committed, and
then the answer is "too late". The answer is always one of these, never a mere "requested".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from backend import tracking
from backend.db.engine import Database
from backend.errors import IngestError
from backend.tracking import Status

#: How long `cancel` waits for the load's final status (it stops at its next batch, normally
#: within a second or two).
WAIT_SECONDS = 300.0
_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """How the load ended after the request: its final status, or None if it still runs."""

    tracking_id: int
    status: str | None
    error_message: str | None = None

    @property
    def too_late(self) -> bool:
        return self.status == Status.LOADED.value


def cancel_load(db: Database, tracking_id: int, *, wait_seconds: float = WAIT_SECONDS) -> CancelOutcome:
    """Request the cancel of load `tracking_id` and wait until it is no longer running.

    Raises:
        NotFoundError: no such load.
        IngestError: the load had already ended otherwise than ``loaded`` (nothing to cancel).
    """
    try:
        tracking.request_cancel(db, tracking_id)
    except IngestError:
        row = tracking.get(db, tracking_id)
        if row is not None and row.status == Status.LOADED.value:
            return CancelOutcome(tracking_id, row.status)
        raise
    deadline = time.monotonic() + wait_seconds
    while True:
        row = tracking.get(db, tracking_id)
        if row is not None and row.status != Status.PROCESSING.value:
            return CancelOutcome(tracking_id, row.status, row.error_message)
        if time.monotonic() >= deadline:
            return CancelOutcome(tracking_id, None)
        time.sleep(_POLL_SECONDS)
