"""What the loop, the workers, the health thread and the scheduler share while the daemon runs.

Every mutable field is read and written under a lock: the database outage state in `Outage`
(which the health thread reads while workers report failures), the rest under `Runtime.lock`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.config import Settings
from backend.daemon.metrics import Metrics
from backend.daemon.stability import StabilityTracker
from backend.db.engine import Database

#: Longest wait before new files are dispatched again after database failures.
MAX_BACKOFF_SECONDS = 60.0


class Outage:
    """Whether the database works, and when to try it again: exponential backoff, one step per round.

    Several files failing in the same round (30 waiting files when the server goes down) are one
    step of backoff, not thirty.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ok = True
        self._error: str | None = None
        self._retry_at = 0.0
        self._failures = 0

    @property
    def ok(self) -> bool:
        with self._lock:
            return self._ok

    @property
    def error(self) -> str | None:
        with self._lock:
            return self._error

    @property
    def failures(self) -> int:
        with self._lock:
            return self._failures

    @property
    def retry_at(self) -> float:
        with self._lock:
            return self._retry_at

    def failed(self, exc: BaseException) -> None:
        """A load or a start-up step found the database unusable."""
        with self._lock:
            self._ok = False
            self._error = str(exc)
            now = self._clock()
            if now < self._retry_at:
                return  # another file of the same round: no further step
            self._failures += 1
            self._retry_at = now + min(MAX_BACKOFF_SECONDS, 2.0 ** min(self._failures - 1, 6))

    def recovered(self) -> None:
        with self._lock:
            self._ok, self._error, self._failures, self._retry_at = True, None, 0, 0.0

    def may_dispatch(self) -> bool:
        """Whether new files may be handed to workers now (the backoff has passed)."""
        with self._lock:
            return self._clock() >= self._retry_at


@dataclass
class Runtime:
    """What the main loop, the workers and the health endpoints share."""

    settings: Settings
    db: Database
    stop: threading.Event
    tracker: StabilityTracker
    metrics: Metrics
    outage: Outage = field(default_factory=Outage)
    abort: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Monotonic time of the loop's last beat (liveness).
    heartbeat: float = field(default_factory=time.monotonic)
    last_scan_ok: float | None = None
    watcher_alive: bool = True
    #: Files being loaded: path -> tracking id (None until claimed).
    in_flight: dict[Path, int | None] = field(default_factory=dict)
    recent: list[dict[str, Any]] = field(default_factory=list)
    #: Our `processing` rows left open because the database failed; closed when it is back.
    orphans: dict[int, str] = field(default_factory=dict)
    #: Files moved while the database could not record it: tracking id -> (new path, values).
    unrecorded_moves: dict[int, tuple[Path, dict[str, Any]]] = field(default_factory=dict)
    #: Tables whose policy file is invalid: table -> the error. Their files wait in the dropoff.
    policy_errors: dict[str, str] = field(default_factory=dict)

    def remember(self, outcome: dict[str, Any]) -> None:
        """Keep one of the last 50 outcomes for /status."""
        with self.lock:
            self.recent.insert(0, outcome)
            del self.recent[50:]

    def recent_outcomes(self, count: int = 20) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.recent[:count])

    def policy_problem(self, table: str, error: str | None) -> bool:
        """Record whether `table`'s policy is invalid now; True when that changed."""
        with self.lock:
            before = self.policy_errors.get(table)
            if error is None:
                self.policy_errors.pop(table, None)
            else:
                self.policy_errors[table] = error
            return before != error

    def held_tables(self) -> dict[str, str]:
        with self.lock:
            return dict(self.policy_errors)

    def in_flight_ids(self) -> list[int]:
        with self.lock:
            return [i for i in self.in_flight.values() if i is not None]
