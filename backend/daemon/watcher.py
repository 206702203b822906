"""Finding candidate files: a full rescan of the drop folders plus watchdog events as hints.

The rescan (`scan`) is the source of truth: it lists the four drop folders (never their
processed/ or error/ contents, so its cost does not grow with history) and returns the files
that may be loaded. Filesystem events only say "look now": the `Watcher` turns them into a
deduplicated set of hinted paths and wakes whoever waits on it. Events can be lost (network
shares, kernel queue overflow, which watchdog drops silently), so the caller rescans on every
interval anyway and restarts the watcher when `alive` turns false.

Typical loop (see `backend.daemon.loop`)::

    watcher.start()
    while not stop.is_set():
        watcher.wait(settings.monitor_interval)    # an event or the interval, whichever first
        watcher.drain_hints()                      # hints only shorten the wait
        if not watcher.alive:
            watcher.restart()
        ready = tracker.check(watcher.scan(), now=time.time())
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from backend.config import Settings
from backend.daemon.folders import ERROR, PROCESSED, drop_folders
from backend.daemon.stability import MARKER_SUFFIXES

log = structlog.get_logger(__name__)

#: Names that are never loaded and never logged: hidden files and office lock files.
IGNORED_PREFIXES: tuple[str, ...] = (".", "~$")
#: Uploads in progress (browsers, WinSCP, editors) and readiness/cancel markers.
IGNORED_SUFFIXES: tuple[str, ...] = (".tmp", ".part", ".crdownload", ".filepart", ".cancel", *MARKER_SUFFIXES)
#: Entries between two calls of a scan's `tick`.
TICK_EVERY = 256
#: More hinted paths than this between two drains means "rescan everything" instead.
DEFAULT_MAX_HINTS = 10_000

WatchMode = Literal["native", "polling", "stopped"]


def ignore_reason(name: str, extensions: Iterable[str]) -> str | None:
    """Why a file name is not a candidate ("hidden", "partial", "marker", "extension"), or None.

    Matching is case-insensitive, so ``DATA.CSV`` counts when ``.csv`` is accepted.
    """
    low = name.lower()
    if low.startswith(IGNORED_PREFIXES):
        return "hidden"
    if low.endswith(MARKER_SUFFIXES) or low.endswith(".cancel"):
        return "marker"
    if low.endswith(IGNORED_SUFFIXES):
        return "partial"
    if not low.endswith(tuple(ext.lower() for ext in extensions)):
        return "extension"
    return None


def scan(
    base: Path,
    settings: Settings,
    *,
    warned: set[Path] | None = None,
    refused: dict[Path, str] | None = None,
    tick: Callable[[], None] | None = None,
) -> list[Path]:
    """List the candidate files directly inside the four drop folders, sorted by path.

    Hidden, partial and marker files are skipped quietly. Symlinks (never followed), folders,
    FIFOs, devices and files with an extension that is not accepted are skipped with a log
    line; pass the same `warned` set on every call to log each such path only once.

    Args:
        base: the dropoff root (``settings.dropoff_base_path``, or another root in tests).
        settings: supplies ``accepted_extensions``.
        warned: paths already logged; updated to the paths skipped in this scan.
        refused: if given, receives the symlinks, FIFOs, devices and sockets whose name has an
            accepted extension, with the reason, so that the caller can move them to error/
            instead of leaving them in the drop folder forever.
        tick: called every few hundred entries (the daemon's heartbeat: a folder of 10,000
            files must not starve the systemd watchdog).

    Raises:
        FileNotFoundError: `base` itself is missing or not a folder (e.g. an unmounted share),
            so that the caller does not mistake an empty result for an empty dropoff. A single
            missing drop folder is only logged.
    """
    if not os.path.isdir(base):
        raise FileNotFoundError(errno.ENOENT, "dropoff folder is missing or not a folder", str(base))
    extensions = tuple(settings.accepted_extensions)
    found: list[Path] = []
    skipped: dict[Path, str] = {}
    for folder in drop_folders(base):
        try:
            entries = os.scandir(folder.path)
        except OSError as exc:
            skipped[folder.path] = f"drop folder unreadable: {exc.strerror}"
            continue
        with entries:
            for count, entry in enumerate(entries):
                if tick is not None and count % TICK_EVERY == 0:
                    tick()
                if entry.name.lower() in (PROCESSED, ERROR):
                    continue
                reason = ignore_reason(entry.name, extensions)
                if reason in ("hidden", "partial", "marker"):
                    continue
                path = Path(entry.path)
                if entry.is_symlink():
                    skipped[path] = "symlink, never followed"
                elif entry.is_dir(follow_symlinks=False):
                    skipped[path] = "folder inside a drop folder"
                    continue  # never moved: it may be someone's work in progress
                elif not entry.is_file(follow_symlinks=False):
                    skipped[path] = "not a regular file"
                elif reason == "extension":
                    skipped[path] = "extension not accepted"
                    continue
                else:
                    found.append(path)
                    continue
                if refused is not None and reason is None:
                    refused[path] = _kind_of_entry(entry, skipped[path])
    for path, why in skipped.items():
        if warned is None or path not in warned:
            log.warning("file skipped", path=str(path), reason=why)
    if warned is not None:
        # Forget what is gone so that the set stays as small as the folders.
        warned.intersection_update(skipped)
        warned.update(skipped)
    return sorted(found)


def _kind_of_entry(entry: os.DirEntry[str], default: str) -> str:
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return default
    if stat.S_ISLNK(mode):
        return "a symbolic link (never followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return default


class _HintHandler(FileSystemEventHandler):
    """Runs on the observer thread: only hands the path over, never touches the file."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        super().__init__()
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        if path:
            self._sink(os.fsdecode(path))


class Watcher:
    """Filesystem events on the four drop folders, as a thread-safe set of hinted paths.

    Native events (inotify, ReadDirectoryChangesW, FSEvents) by default; polling every
    ``settings.monitor_interval`` seconds when ``settings.force_polling`` is set (network shares,
    where native events miss other hosts' writes) or when the inotify limits are exhausted.

    Args:
        base: the dropoff root.
        settings: supplies ``force_polling``, ``monitor_interval``, ``accepted_extensions``.
        on_event: called after each new hint, on the observer thread, so it must be quick
            (e.g. ``threading.Event.set`` to wake the main loop).
        max_hints: hints kept between two drains before declaring an overflow.
    """

    def __init__(
        self,
        base: Path,
        settings: Settings,
        *,
        on_event: Callable[[], None] | None = None,
        max_hints: int = DEFAULT_MAX_HINTS,
    ) -> None:
        self._base = Path(base)
        self._on_event = on_event
        self._settings = settings
        self._max_hints = max_hints
        self._extensions = tuple(settings.accepted_extensions)
        self._lock = threading.Lock()
        self._hints: set[Path] = set()
        self._woken = threading.Event()
        self._overflowed = False
        self._observer: BaseObserver | None = None
        self._mode: WatchMode = "stopped"
        self._warned: set[Path] = set()

    @property
    def mode(self) -> WatchMode:
        """How events are observed now: "native", "polling" or "stopped"."""
        return self._mode

    @property
    def alive(self) -> bool:
        """False when stopped, when the observer or one of its folder watches died, or after an
        overflow of hints; the caller should then rescan and `restart()`."""
        observer = self._observer
        if observer is None or self._overflowed or not observer.is_alive():
            return False
        emitters = list(observer.emitters)
        return len(emitters) == len(drop_folders(self._base)) and all(e.is_alive() for e in emitters)

    def start(self) -> None:
        """Start observing the drop folders (they must exist: see `lifecycle.ensure_directories`).

        Raises:
            RuntimeError: already started.
            OSError: a folder cannot be watched for another reason than the inotify limits.
        """
        with self._lock:
            if self._observer is not None:
                raise RuntimeError("watcher already started")
            self._overflowed = False
        mode: WatchMode
        if self._settings.force_polling:
            observer, mode = self._start_observer(polling=True), "polling"
        else:
            try:
                observer, mode = self._start_observer(polling=False), "native"
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                log.warning(
                    "inotify limit reached, falling back to polling",
                    error=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                    hint="raise fs.inotify.max_user_watches / fs.inotify.max_user_instances (sysctl)",
                )
                observer, mode = self._start_observer(polling=True), "polling"
        with self._lock:
            self._observer, self._mode = observer, mode
        log.info("watching drop folders", base=str(self._base), mode=mode)

    def _start_observer(self, *, polling: bool) -> BaseObserver:
        observer: BaseObserver = (
            PollingObserver(timeout=self._settings.monitor_interval) if polling else Observer()
        )
        observer.name = "watchdog-observer"
        handler = _HintHandler(self._add_hint)
        try:
            for folder in drop_folders(self._base):
                observer.schedule(handler, str(folder.path), recursive=False)
            observer.start()
        except BaseException:
            _shut_down(observer)
            raise
        return observer

    def stop(self) -> None:
        """Stop observing and wait for the observer threads to end. Idempotent."""
        with self._lock:
            observer, self._observer, self._mode = self._observer, None, "stopped"
        if observer is not None:
            _shut_down(observer)

    def restart(self) -> None:
        """Stop (if needed) and start again, e.g. after `alive` turned false."""
        log.warning("restarting the filesystem watcher", previous_mode=self._mode)
        self.stop()
        self.start()

    def _add_hint(self, raw: str) -> None:
        path = Path(raw)
        name = path.name
        reason = ignore_reason(name, self._extensions)
        if reason == "marker":
            # x.csv.done names its file; x.done does not, but still means "look now".
            stem = name[: name.rfind(".")]
            path = path.with_name(stem) if ignore_reason(stem, self._extensions) is None else path
        elif reason is not None:
            return
        with self._lock:
            if self._overflowed:
                return
            self._hints.add(path)
            if len(self._hints) > self._max_hints:
                self._overflowed = True
                self._hints.clear()
                log.warning("too many filesystem events; a full rescan replaces them", limit=self._max_hints)
        self._woken.set()
        if self._on_event is not None:
            self._on_event()

    def drain_hints(self) -> set[Path]:
        """The paths hinted since the last call (marker paths included, as "look now")."""
        with self._lock:
            hints, self._hints = self._hints, set()
            self._woken.clear()
        return hints

    def wait(self, timeout: float) -> bool:
        """Block until a hint arrives or `timeout` seconds pass; True if woken by a hint."""
        return self._woken.wait(timeout)

    def scan(self) -> list[Path]:
        """`scan` of this watcher's folders, logging each skipped path once."""
        return scan(self._base, self._settings, warned=self._warned)


def _shut_down(observer: BaseObserver) -> None:
    observer.stop()  # also stops and joins the emitters that did start
    if observer.is_alive():
        observer.join()
