"""Has this file stopped changing? Pure bookkeeping: the clock and `stat` are passed in.

A file is ready when one of these holds:

* it was seen unchanged (same size, mtime and inode) in ``checks`` consecutive checks after the
  one that first saw it so (with ``checks=6`` and a 15 s scan it is ready about 90 s after its
  last write), **and** it has been seen unchanged for at least ``min_age_seconds`` by the
  daemon's own clock (MIN_FILE_AGE_SECONDS); or
* a readiness marker sits next to it: ``<full name>.done`` / ``<full name>.ok`` (``x.csv.done``)
  or ``<stem>.done`` / ``<stem>.ok`` (``x.done``). The uploader writes the marker after the
  data file is complete; the file is then ready at once, without waiting for the checks.

In both cases the exclusive-open probe must also succeed (on Windows a writer that still holds
the file makes it fail; on POSIX it always succeeds).

The stability window (``checks`` x scan interval) should exceed the attribute-cache time of a
network share (NFS caches size and mtime for about 60 s), so that a stale `stat` cannot make a
growing file look stable.

Stability is measured only by the daemon's own observations, never by comparing a file's mtime
with the clock (issue 14, item 3): a sender whose clock runs fast, or a copy tool that keeps the
original times, gives mtimes in the future, and such a file must load like any other. An mtime
more than FUTURE_MTIME_TOLERANCE_SECONDS ahead of the daemon's wall clock is logged once per file
as a warning, and changes nothing else. The mtime is still part of what must not change.
"""

from __future__ import annotations

import os
import stat as stat_module
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

#: Suffixes of readiness markers, appended to the full name or to the stem of the data file.
MARKER_SUFFIXES: tuple[str, ...] = (".done", ".ok")

StatFunc = Callable[[Path], os.stat_result]

#: An mtime this far ahead of the wall clock is worth a warning (network shares drift a little).
FUTURE_MTIME_TOLERANCE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ReadyFile:
    """A file that stopped changing; its SHA-256 is computed later, while it is read.

    Attributes:
        path: where the file is now.
        size: size in bytes at the check that found it ready.
        mtime: modification time (seconds since the epoch) at that check.
        marker: the readiness marker that made it ready at once, or None.
    """

    path: Path
    size: int
    mtime: float
    marker: Path | None = None


@dataclass(slots=True)
class _Observed:
    #: What must stay the same: size, mtime and inode (with its device) (a file swapped for another of the
    #: same size and times is a change).
    state: tuple[int, float, int, int]
    size: int
    mtime: float
    #: When the daemon first saw the path, and first saw it in its current state.
    first_seen: float
    unchanged_since: float
    counted_at: float
    unchanged: int = 0
    handed_out: bool = False
    warned_future: bool = False


def marker_candidates(path: Path) -> list[Path]:
    """The readiness marker paths that would make `path` ready, most specific first."""
    names = [path.name + suffix for suffix in MARKER_SUFFIXES]
    if path.stem != path.name:
        names += [path.stem + suffix for suffix in MARKER_SUFFIXES]
    return [path.with_name(name) for name in names]


def probe_exclusive(path: Path) -> bool:
    """True if nobody else holds the file open for writing (checked on Windows only).

    On Windows the file is opened with no sharing at all; while the uploader still has it open
    that fails with a sharing violation. POSIX has no mandatory locks, so it returns True there.
    """
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.CreateFileW.restype = wintypes.HANDLE
        kernel32.CreateFileW.argtypes = [
            wintypes.LPCWSTR,
            wintypes.DWORD,
            wintypes.DWORD,
            wintypes.LPVOID,
            wintypes.DWORD,
            wintypes.DWORD,
            wintypes.HANDLE,
        ]
        generic_read, no_sharing, open_existing, attribute_normal = 0x80000000, 0, 3, 0x80
        handle = kernel32.CreateFileW(
            str(path), generic_read, no_sharing, None, open_existing, attribute_normal, None
        )
        if handle is None or handle == wintypes.HANDLE(-1).value:
            return False
        kernel32.CloseHandle(handle)
        return True
    return True


class StabilityTracker:
    """Counts unchanged observations per path and reports the files that became ready.

    A ready file is returned once. It is returned again only after it changes or after
    `forget(path)` (call that when a load failed with a retryable error, to make the file go
    through the checks again). Safe to call from several threads; `waiting()` is meant for the
    status endpoint and metrics while the main loop calls `check()`.

    Args:
        checks: consecutive unchanged checks needed (>= 1).
        min_age_seconds: the file must have been seen unchanged for at least this long (by the
            clock `check` is given, never by its mtime).
        min_check_interval_seconds: an unchanged observation counts only if at least this long
            after the last counted one, so that extra checks (woken by filesystem events) do not
            shorten the stability window. 0 counts every check.
        probe: the exclusive-open probe (`probe_exclusive` by default).
        wall_clock: the wall clock, only to notice mtimes in the future (`time.time`).
    """

    def __init__(
        self,
        checks: int,
        min_age_seconds: float = 0.0,
        *,
        min_check_interval_seconds: float = 0.0,
        probe: Callable[[Path], bool] = probe_exclusive,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if checks < 1:
            raise ValueError("checks must be at least 1")
        self.checks = checks
        self.min_age_seconds = min_age_seconds
        self.min_check_interval_seconds = min_check_interval_seconds
        self._probe = probe
        self._wall_clock = wall_clock
        self._seen: dict[Path, _Observed] = {}
        self._lock = threading.Lock()

    def check(
        self,
        paths: Iterable[Path],
        now: float,
        stat: StatFunc = os.lstat,
        tick: Callable[[], None] | None = None,
    ) -> list[ReadyFile]:
        """Record one observation of every path and return those that are ready now.

        Args:
            paths: the complete current listing of candidate files (e.g. `watcher.scan()`);
                tracked paths missing from it are forgotten (deleted or moved away).
            now: the daemon's own clock in seconds (monotonic in the daemon); only differences
                between its values are used, never a comparison with a file's mtime.
            stat: how to stat a path; `os.lstat` so a symlink is never followed.
            tick: called every few hundred paths (the daemon's heartbeat).
        """
        listing = list(dict.fromkeys(Path(p) for p in paths))
        ready: list[ReadyFile] = []
        with self._lock:
            for gone in self._seen.keys() - set(listing):
                del self._seen[gone]
            for count, path in enumerate(listing):
                if tick is not None and count % 256 == 0:
                    tick()
                item = self._observe(path, now, stat)
                if item is not None:
                    ready.append(item)
        return ready

    def _observe(self, path: Path, now: float, stat: StatFunc) -> ReadyFile | None:
        try:
            st = stat(path)
        except OSError:
            self._seen.pop(path, None)
            return None
        if not stat_module.S_ISREG(st.st_mode):
            self._seen.pop(path, None)
            return None
        seen = self._seen.get(path)
        state = (st.st_size, st.st_mtime, st.st_ino, st.st_dev)
        if seen is None or seen.state != state:
            seen = _Observed(
                state=state,
                size=st.st_size,
                mtime=st.st_mtime,
                first_seen=now if seen is None else seen.first_seen,
                unchanged_since=now,
                counted_at=now,
                warned_future=seen is not None and seen.warned_future,
            )
            self._seen[path] = seen
            self._warn_if_future(path, seen)
        elif now - seen.counted_at >= self.min_check_interval_seconds:
            seen.unchanged += 1
            seen.counted_at = now
        if seen.handed_out:
            return None
        marker = _find_marker(path, stat)
        if marker is None and (
            seen.unchanged < self.checks or now - seen.unchanged_since < self.min_age_seconds
        ):
            return None
        if not self._probe(path):
            log.debug("file still held open by another process", path=str(path))
            return None
        seen.handed_out = True
        return ReadyFile(path=path, size=seen.size, mtime=seen.mtime, marker=marker)

    def _warn_if_future(self, path: Path, seen: _Observed) -> None:
        ahead = seen.mtime - self._wall_clock()
        if ahead > FUTURE_MTIME_TOLERANCE_SECONDS and not seen.warned_future:
            seen.warned_future = True
            log.warning(
                "file's modification time is in the future (sender's clock ahead, or times kept by "
                "a copy tool); it loads once stable all the same",
                file=path.name,
                seconds_ahead=round(ahead),
            )

    def is_handed_out(self, path: Path) -> bool:
        """Whether `path` was reported ready and has not changed (or been forgotten) since."""
        with self._lock:
            seen = self._seen.get(Path(path))
            return seen is not None and seen.handed_out

    def forget(self, path: Path) -> None:
        """Stop tracking `path`; the next check starts counting from zero."""
        with self._lock:
            self._seen.pop(Path(path), None)

    def waiting(self) -> list[tuple[Path, int, int]]:
        """Files still waiting: (path, unchanged checks so far, checks needed), by path."""
        with self._lock:
            return sorted(
                (path, min(seen.unchanged, self.checks), self.checks)
                for path, seen in self._seen.items()
                if not seen.handed_out
            )

    def oldest_first_seen(self) -> float | None:
        """When the longest-waiting file was first seen, on `check`'s clock (None if nothing waits)."""
        with self._lock:
            times = [seen.first_seen for seen in self._seen.values() if not seen.handed_out]
        return min(times, default=None)


def _find_marker(path: Path, stat: StatFunc) -> Path | None:
    for marker in marker_candidates(path):
        try:
            if stat_module.S_ISREG(stat(marker).st_mode):
                return marker
        except OSError:
            continue
    return None
