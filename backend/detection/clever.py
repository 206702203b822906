"""CleverCSV's opinion on a small, bounded slice of a sample, used only to break near-ties.

CleverCSV can be very slow on large inputs (alan-turing-institute/CleverCSV#15) and on long
cells (its type regexes: #13), so it sees at most a few dozen short lines, and only when its
answer could change the choice (`may_decide`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog

log = structlog.get_logger(__name__)

_CLEVERCSV_CHARS = 16 * 1024
_CLEVERCSV_LINES = 64
_CLEVERCSV_MAX_LINE = 4096
#: CleverCSV's choice gets this factor: enough to break a near-tie, never to overrule.
NUDGE = 1.05


def may_decide(scores: Sequence[float]) -> bool:
    """Whether CleverCSV's nudge could change the best of `scores` (one per delimiter).

    Its answer only multiplies one candidate's score by NUDGE. When the best score beats every
    other one nudged, no answer can change the winner (the same float products as the caller,
    and a strict comparison, so ties still go to CleverCSV): it is not asked. That is most files
    (one clear delimiter), and it costs ~10 ms a file, the largest share of detecting a small one.
    """
    if len(scores) < 2:
        return False
    best = max(range(len(scores)), key=lambda i: scores[i])
    return any(i != best and score * NUDGE >= scores[best] for i, score in enumerate(scores))


def clevercsv_dialect(
    lines: Sequence[str], delimiters: Sequence[str]
) -> tuple[str, str | None, str | None] | None:
    """(delimiter, quotechar, escapechar) CleverCSV finds in the first lines, or None."""
    chunk: list[str] = []
    size = 0
    for line in lines[:_CLEVERCSV_LINES]:
        if len(line) > _CLEVERCSV_MAX_LINE:
            return None  # long cells make its type regexes slow (CleverCSV#13, #15)
        if size + len(line) > _CLEVERCSV_CHARS:
            break
        chunk.append(line)
        size += len(line)
    if not chunk or not delimiters:
        return None
    from clevercsv.detect import Detector  # imports no pandas; ~0.3 s, so only when needed

    started = time.perf_counter()
    try:
        found = Detector().detect("".join(chunk), delimiters=list(delimiters))
    except Exception as exc:  # noqa: BLE001 - a third-party heuristic must never fail detection
        log.debug("clevercsv_failed", error=repr(exc))
        return None
    log.debug("clevercsv", seconds=round(time.perf_counter() - started, 4), dialect=repr(found))
    if found is None or not found.delimiter or found.delimiter not in delimiters:
        return None
    return found.delimiter, found.quotechar or None, found.escapechar or None
