"""Named fault-injection points, so tests can fail a real load at an exact step.

``REFDATA_FAULTS="stage.batch@3,publish.before_commit"`` makes the 3rd staged batch and the
publish step raise `InjectedFault`; ``loop.tick@3=sleep:6`` makes the 3rd hit stall for 6 s
instead (a stuck loop, for the watchdog test, or a process held at an exact step until the
crash tests kill it). Unset (the normal case) every call is one environment lookup.

The points, in a load's order:

- ``write.batch``: a batch is sent into the new version's table but not committed (inside the
  open COPY on PostgreSQL, inside the batch's transaction on SQLite);
- ``stage.batch``: after each batch, before SQLite commits it;
- ``publish.before_insert``, ``publish.swap`` (inside the swap: the current version detached or
  renamed away, the new one not yet in its place), ``publish.before_commit``;
- ``retention.prune``: inside retention's transaction, a kept version's table dropped and its
  catalogue row not yet marked dropped;
- ``loop.tick``: the daemon's scan loop.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import structlog

from backend.errors import InjectedFault

log = structlog.get_logger(__name__)

_hits: Counter[str] = Counter()


def hit(point: str) -> None:
    """Raise InjectedFault if REFDATA_FAULTS names `point` (optionally `point@N` for the Nth hit)."""
    spec = os.environ.get("REFDATA_FAULTS")
    if not spec:
        return
    _hits[point] += 1
    for item in spec.split(","):
        target, _, action = item.strip().partition("=")
        name, _, nth = target.partition("@")
        if name == point and (not nth or int(nth) == _hits[point]):
            if action.startswith("sleep:"):
                seconds = float(action.removeprefix("sleep:"))
                # The crash tests wait for this line to kill the process exactly here.
                log.warning("stalled at fault point", point=point, hit=_hits[point], seconds=seconds)
                time.sleep(seconds)
                return
            raise InjectedFault(f"injected fault at {point} (hit {_hits[point]})")


def reset() -> None:
    _hits.clear()
