"""Named fault-injection points, so tests can fail a real load at an exact step.

``REFDATA_FAULTS="stage.batch@3,publish.before_commit"`` makes the 3rd staged batch and the
publish step raise `InjectedFault`; ``loop.tick@3=sleep:6`` makes the 3rd hit stall for 6 s
instead (a stuck loop, for the watchdog test). Unset (the normal case) every call is one dict
lookup.
"""

from __future__ import annotations

import os
import time
from collections import Counter

from backend.errors import InjectedFault

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
                time.sleep(float(action.removeprefix("sleep:")))
                return
            raise InjectedFault(f"injected fault at {point} (hit {_hits[point]})")


def reset() -> None:
    _hits.clear()
