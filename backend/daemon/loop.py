"""The daemon's main loop, as an object whose `tick` a test can drive one scan at a time.

One tick: beat the heartbeat, restart a dead watcher, collect finished workers, rescan the drop
folders (the source of truth: network shares deliver no events), feed the stability tracker and
hand the files that are ready to the dispatcher, unless a database outage's backoff says wait.
Between ticks `wait` sleeps until the interval, a filesystem event or stop, beating the
heartbeat all along. The scanner, the dispatcher and the clock are injected, as uvicorn's
`Server` and watchdog's observers take theirs, so that `tests/daemon/test_loop.py` runs ticks
without a subprocess; `run` wires the real ones.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from backend import faults, tracking
from backend.config import Settings
from backend.daemon import claim
from backend.daemon import folders as lifecycle
from backend.daemon.housekeeping import catch_up, start_housekeeping, wait_for_database
from backend.daemon.marker import FolderMarker
from backend.daemon.metrics import Metrics
from backend.daemon.notify import Heartbeat, Notifier, StatusLine, watchdog_interval_seconds
from backend.daemon.order import TableOrder
from backend.daemon.probes import start_health
from backend.daemon.runtime import Outage, Runtime
from backend.daemon.settle import Outcome, process_file, reject_entry
from backend.daemon.stability import ReadyFile, StabilityTracker
from backend.daemon.watcher import Watcher, scan
from backend.db.engine import open_database
from backend.errors import IngestError
from backend.load import versions

log = structlog.get_logger(__name__)

#: (candidate files, refused entries with their reason) of one rescan; may raise OSError.
Scan = tuple[list[Path], dict[Path, str]]


class Scanner(Protocol):
    def __call__(self, tick: Callable[[], None]) -> Scan: ...


class Dispatcher(Protocol):
    """Runs settling work off the loop's thread (a worker pool; synchronous in tests)."""

    def submit(self, fn: Callable[..., Outcome], /, *args: Any) -> Future[Outcome]: ...


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock: wall time for file ages, monotonic time for waits."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True, slots=True)
class Tick:
    """What one tick saw: nothing left to do (`idle`), and how many files it dispatched."""

    idle: bool
    dispatched: int


class Loop:
    """Discovery and dispatch, one `tick` per scan."""

    def __init__(
        self,
        rt: Runtime,
        *,
        scanner: Scanner,
        dispatcher: Dispatcher,
        clock: Clock,
        pulse: Heartbeat,
        status: StatusLine,
        watcher: Watcher | None = None,
        marker: FolderMarker | None = None,
        wakeup: threading.Event | None = None,
    ) -> None:
        """Args (besides the injected seams): `wakeup`, the event the watcher's `on_event` sets."""
        self.rt = rt
        self._marker = marker
        # Set by a filesystem hint (the watcher's on_event) and by every load that ends, so that
        # `wait` returns for a hint and hands a waiting table its next file the moment the
        # previous one settled, instead of at its next look.
        self._wakeup = wakeup or threading.Event()
        self._scanner, self._dispatcher, self._clock = scanner, dispatcher, clock
        self._pulse, self._status, self._watcher = pulse, status, watcher
        self.futures: dict[Path, Future[Outcome]] = {}
        # Files whose rows are committed while they still move: their tables may take the next
        # file (appended by the workers, taken by the loop, which alone touches `order`).
        self._published: collections.deque[Path] = collections.deque()
        settings = rt.settings
        # A table waits for a sibling still settling at most one stability window.
        self.order = TableOrder(
            settings.dropoff_base_path,
            rt.db.adapter.max_identifier_length,
            hold_seconds=settings.monitor_interval * settings.stability_checks,
        )
        self._refused_next: dict[Path, float] = {}
        self._dropoff_error: str | None = None

    def tick(self) -> Tick:
        """One scan: find files, count their stability, dispatch those that are ready."""
        rt = self.rt
        faults.hit("loop.tick")
        self._pulse.beat()
        self._tend_watcher()
        self._collect()
        candidates, refused = self._scan()
        pending = [p for p in candidates if p not in self.futures]
        now = self._clock.monotonic()
        ready = rt.tracker.check(pending, now=now, tick=self._pulse.beat)
        waiting = rt.tracker.waiting()
        rt.metrics.files_waiting_stability.set(len(waiting))
        loose = self.order.add(ready, now)
        dispatched = self._dispatch(now, loose, [w[0] for w in waiting])
        if dispatched is None:
            dispatched = 0
        else:
            dispatched += self._dispatch_refused(refused)
        rt.metrics.queue_depth.set(len(self.futures))
        self._status.show(
            rt.settings.dropoff_base_path, len(rt.tracker.waiting()), len(self.futures), rt.outage.ok
        )
        idle = not self.futures and not candidates and not refused and not self.order.queued()
        return Tick(idle=idle, dispatched=dispatched)

    def _dispatch(self, now: float, loose: list[ReadyFile], waiting: list[Path]) -> int | None:
        """Hand workers what may start now; None when nothing may (outage backoff, foreign marker)."""
        rt = self.rt
        # Another database's daemon took the folder over (its marker replaced ours): load nothing.
        foreign = self._marker.check() if self._marker is not None else None
        if not rt.outage.may_dispatch() or foreign is not None:
            for path in [*(r.path for r in loose), *self.order.clear()]:
                rt.tracker.forget(path)  # counted again once the backoff is over
            return None
        if rt.orphans or rt.unrecorded_moves:
            catch_up(rt)
        # One file per table at a time, in the table's order (see backend.daemon.order).
        started = [*loose, *self.order.take(now, waiting, rt.tracker.is_handed_out)]
        for item in started:
            future = self._dispatcher.submit(process_file, rt, item, self._publisher(item.path))
            future.add_done_callback(self._load_ended)
            self.futures[item.path] = future
        return len(started)

    def _load_ended(self, _future: Future[Outcome]) -> None:
        # On the worker's thread: only wake the loop, which collects and dispatches.
        self._wakeup.set()

    def _publisher(self, path: Path) -> Callable[[], None]:
        def published() -> None:
            # On the worker's thread, like `_load_ended`.
            self._published.append(path)
            self._wakeup.set()

        return published

    def _release_published(self) -> bool:
        """Free the tables of files already committed but still moving; whether any was."""
        released = False
        while self._published:
            self.order.finished(self._published.popleft())
            released = True
        return released

    def _next_of_table(self) -> bool:
        """A load finished while files of its table wait: collect it and start the next at once.

        Without this the next file of a table would wait for the next scan (MONITOR_INTERVAL),
        ten fullloads of one table costing ten intervals; no rescan is needed for it. `wait`
        calls it as soon as a load ends (`_load_ended`): a burst of small files into one table
        is loaded one file after the other, with no pause between two.
        """
        released = self._release_published()
        if not self.order.queued() or not (released or any(f.done() for f in self.futures.values())):
            return False
        self._collect()
        self._dispatch(self._clock.monotonic(), [], [w[0] for w in self.rt.tracker.waiting()])
        self.rt.metrics.queue_depth.set(len(self.futures))
        return True

    def wait(self, seconds: float | None = None) -> None:
        """Sleep until the interval (or `seconds`), a filesystem event, or stop, whichever comes first.

        The wait is cut into steps short enough for the heartbeat to ping the systemd watchdog
        on time whatever MONITOR_INTERVAL is.
        """
        rt = self.rt
        deadline = self._clock.monotonic() + (rt.settings.monitor_interval if seconds is None else seconds)
        while not rt.stop.is_set():
            self._pulse.beat()
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return
            # Cleared before anything is looked at: a load ending or a hint arriving from here
            # on wakes the next wait, and whatever happened before is seen below.
            self._wakeup.clear()
            if self._watcher is not None and self._watcher.wait(0):
                self._watcher.drain_hints()
                return
            # Files wait for a busy table whose load may have ended: start the next (no rescan).
            self._next_of_table()
            self._wakeup.wait(min(remaining, self._pulse.step_seconds))

    def run(self, *, until_idle: bool = False) -> None:
        """Tick until stop is set (with `until_idle`: until nothing is left to do)."""
        while not self.rt.stop.is_set():
            if self.tick().idle and until_idle:
                return
            busy = until_idle and self.futures
            self.wait(min(self.rt.settings.monitor_interval, 0.2) if busy else None)

    def drain(self, pool: ThreadPoolExecutor) -> None:
        """Let loads in flight finish within the grace period, then roll the rest back."""
        rt = self.rt
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = self._clock.monotonic() + rt.settings.shutdown_timeout_seconds
        for future in self.futures.values():
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(Exception):
                future.result(timeout=remaining)
        if any(not f.done() for f in self.futures.values()):
            rt.abort.set()
            for future in self.futures.values():
                with contextlib.suppress(Exception):
                    future.result(timeout=30)

    def _tend_watcher(self) -> None:
        watcher, rt = self._watcher, self.rt
        if watcher is not None and not watcher.alive:
            rt.watcher_alive = False
            rt.metrics.watcher_restarts.inc()
            log.warning("filesystem watcher stopped; rescanning and restarting it")
            try:
                lifecycle.ensure_directories(rt.settings.dropoff_base_path)
                watcher.restart()
            except (OSError, IngestError) as exc:
                # The share may be unmounted: carry on with rescans until it returns.
                log.warning("watcher restart failed; rescans only for now", error=str(exc))
        rt.watcher_alive = watcher is None or watcher.alive
        if watcher is not None:
            watcher.drain_hints()

    def _collect(self) -> None:
        self._release_published()
        for path in [p for p, f in self.futures.items() if f.done()]:
            done = self.futures.pop(path)
            self.order.finished(path)
            if not done.cancelled() and done.exception() is None:
                self._status.count(done.result())

    def _scan(self) -> Scan:
        rt = self.rt
        try:
            found = self._scanner(self._pulse.beat)
        except OSError as exc:
            # Once per outage, not once per scan: an unmounted share would flood the log.
            if self._dropoff_error is None:
                log.warning("dropoff not readable; will rescan", error=str(exc))
            self._dropoff_error = str(exc)
            return [], {}
        rt.last_scan_ok = self._clock.time()
        rt.metrics.last_successful_scan.set(rt.last_scan_ok)
        if self._dropoff_error is not None:
            log.warning("dropoff readable again", was=self._dropoff_error)
            self._dropoff_error = None
        return found

    def _dispatch_refused(self, refused: dict[Path, str]) -> int:
        """Symlinks, FIFOs and devices go to error/, at a stability window's pace if that fails."""
        settings, now, count = self.rt.settings, self._clock.monotonic(), 0
        for path, reason in refused.items():
            if path not in self.futures and self._refused_next.get(path, 0.0) <= now:
                self._refused_next[path] = now + settings.monitor_interval * settings.stability_checks
                self.futures[path] = self._dispatcher.submit(reject_entry, self.rt, path, reason)
                count += 1
        for gone in self._refused_next.keys() - refused.keys():
            del self._refused_next[gone]
        return count


def run(settings: Settings, stop: threading.Event, *, until_idle: bool = False) -> int:
    """Run the monitor until `stop` is set (or, with `until_idle`, until nothing is left to do)."""
    base = settings.dropoff_base_path
    lifecycle.ensure_directories(base)
    # One folder, one database: refuse before anything is loaded (ConfigError, exit code 2).
    marker = FolderMarker(settings, tracking.OWNER)
    marker.claim()
    db = open_database(settings)
    clock = SystemClock()
    rt = Runtime(
        settings=settings,
        db=db,
        stop=stop,
        tracker=StabilityTracker(
            settings.stability_checks,
            settings.min_file_age_seconds,
            min_check_interval_seconds=settings.monitor_interval * 0.9,
        ),
        metrics=Metrics(),
        outage=Outage(clock.monotonic),
    )
    wait_for_database(rt)
    if stop.is_set():
        return 0
    with contextlib.suppress(IngestError):
        claim.recover_stale(db)
        claim.reconcile_moves(db)
        versions.drop_orphans(db)
    # With FORCE_POLLING the periodic rescan is all there is: a polling observer would only
    # walk the same folders a second time.
    wakeup = threading.Event()
    watcher = None if settings.force_polling else Watcher(base, settings, on_event=wakeup.set)
    if watcher is not None:
        watcher.start()
    notify = Notifier.from_environment()
    pulse = Heartbeat(notify, watchdog_interval_seconds(), on_beat=lambda now: setattr(rt, "heartbeat", now))
    warned: set[Path] = set()

    def scanner(tick: Callable[[], None]) -> Scan:
        refused: dict[Path, str] = {}
        return scan(base, settings, warned=warned, refused=refused, tick=tick), refused

    health = start_health(rt) if settings.health_enabled else None
    scheduler = start_housekeeping(rt)
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="load")
    loop = Loop(
        rt,
        scanner=scanner,
        dispatcher=pool,
        clock=clock,
        pulse=pulse,
        status=StatusLine(notify),
        watcher=watcher,
        marker=marker,
        wakeup=wakeup,
    )
    notify.ready(f"watching {base}")
    log.info(
        "monitor started",
        dropoff=str(base),
        database=settings.masked_url,
        workers=settings.workers,
        interval=settings.monitor_interval,
        checks=settings.stability_checks,
        health_port=health.port if health else None,
    )
    try:
        loop.run(until_idle=until_idle)
    finally:
        notify.stopping()
        log.info("stopping", in_flight=len(loop.futures))
        loop.drain(pool)
        scheduler.shutdown(wait=False)
        if watcher is not None:
            watcher.stop()
        if health is not None:
            health.stop()
        db.dispose()
        log.info("stopped")
    return 0
