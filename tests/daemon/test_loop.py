"""The loop, tick by tick, without a subprocess: injected scanner, inline dispatcher, fake clock."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from backend.daemon import folders
from backend.daemon.loop import Loop
from backend.daemon.metrics import Metrics
from backend.daemon.notify import Heartbeat, Notifier, StatusLine
from backend.daemon.runtime import Outage, Runtime
from backend.daemon.stability import StabilityTracker
from backend.errors import DatabaseUnavailableError
from tests.support import make_settings, open_db


class FakeClock:
    def __init__(self) -> None:
        import time

        self.now = time.time()
        self.mono = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


class Inline:
    """Runs each job at once and records what was dispatched."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...]]] = []

    def submit(self, fn, /, *args):
        self.jobs.append((fn.__name__, args))
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


@pytest.fixture
def setup(tmp_path: Path):
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'loop.db'}", monitor_interval=1.0, stability_checks=2
    )
    folders.ensure_directories(settings.dropoff_base_path)
    clock = FakeClock()
    db = open_db(settings)
    rt = Runtime(
        settings=settings,
        db=db,
        stop=threading.Event(),
        tracker=StabilityTracker(2, 0.0, min_check_interval_seconds=0.9),
        metrics=Metrics(),
        outage=Outage(clock.monotonic),
    )
    listing: dict[str, Any] = {"files": [], "refused": {}, "error": None}

    def scanner(tick):
        tick()
        if listing["error"] is not None:
            raise listing["error"]
        return list(listing["files"]), dict(listing["refused"])

    dispatcher = Inline()
    loop = Loop(
        rt,
        scanner=scanner,
        dispatcher=dispatcher,
        clock=clock,
        pulse=Heartbeat(Notifier(None), None, clock=clock.monotonic),
        status=StatusLine(Notifier(None)),
    )
    yield rt, loop, clock, dispatcher, listing
    db.dispose()


def drop(rt: Runtime, name: str, text: str = "code,name\nDE,Germany\n") -> Path:
    path = rt.settings.dropoff_base_path / "reference_data_table" / "fullload" / name
    path.write_text(text)
    return path


class TestLoop:
    def test_a_file_is_dispatched_once_it_passed_its_stability_checks(self, setup):
        """A file is counted each tick and settled when its second unchanged check comes."""
        rt, loop, clock, dispatcher, listing = setup
        listing["files"] = [drop(rt, "countries.csv")]
        assert loop.tick().dispatched == 0
        clock.advance(1.0)
        assert loop.tick().dispatched == 0
        clock.advance(1.0)
        assert loop.tick().dispatched == 1
        assert dispatcher.jobs[0][0] == "process_file"
        listing["files"] = []
        clock.advance(1.0)
        tick = loop.tick()
        assert tick.idle and tick.dispatched == 0
        assert (rt.settings.dropoff_base_path / "reference_data_table" / "fullload" / "processed").exists()

    def test_nothing_is_dispatched_while_the_database_backoff_runs(self, setup):
        """After an outage, ready files wait for the backoff and are counted again afterwards."""
        rt, loop, clock, dispatcher, listing = setup
        listing["files"] = [drop(rt, "countries.csv")]
        rt.outage.failed(DatabaseUnavailableError("down"))
        for _ in range(4):
            clock.advance(0.25)
            loop.tick()
        assert dispatcher.jobs == []
        clock.advance(2.0)
        for _ in range(3):
            loop.tick()
            clock.advance(1.0)
        assert [name for name, _ in dispatcher.jobs] == ["process_file"]

    def test_an_unreadable_dropoff_dispatches_nothing_and_recovers(self, setup):
        """A scan that fails (share unmounted) dispatches nothing; the next good scan is recorded."""
        rt, loop, clock, _dispatcher, listing = setup
        listing["error"] = FileNotFoundError(2, "gone")
        for _ in range(3):
            assert loop.tick().dispatched == 0
            clock.advance(1.0)
        assert rt.last_scan_ok is None
        listing["error"] = None
        loop.tick()
        assert rt.last_scan_ok == clock.now

    def test_refused_entries_go_to_error_at_the_pace_of_a_stability_window(self, setup):
        """A symlink is handed to reject_entry once per stability window, not every tick."""
        rt, loop, _clock, dispatcher, listing = setup
        target = drop(rt, "real.txt")
        link = target.with_name("link.csv")
        link.symlink_to(target)
        listing["refused"] = {link: "a symbolic link (never followed)"}
        loop.tick()
        loop.tick()
        assert [name for name, _ in dispatcher.jobs] == ["reject_entry"]
        assert list((link.parent / "error").glob("*link.csv"))


class Deferred:
    """Hands out futures that finish only when the test says so, from another thread."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, tuple[Any, ...], Future[Any]]] = []

    def submit(self, fn, /, *args):
        future: Future[Any] = Future()
        self.jobs.append((fn, args, future))
        return future


def deferred_loop(rt: Runtime, clock: FakeClock, listing: dict[str, Any]) -> tuple[Loop, Deferred]:
    """A loop whose loads finish only when the test says so."""
    dispatcher = Deferred()
    loop = Loop(
        rt,
        scanner=lambda tick: (list(listing["files"]), {}),
        dispatcher=dispatcher,
        clock=clock,
        pulse=Heartbeat(Notifier(None), None, clock=clock.monotonic),
        status=StatusLine(Notifier(None)),
    )
    return loop, dispatcher


class TestHandOff:
    def test_a_load_that_ends_starts_the_next_file_of_its_table_at_once(self, setup):
        """The wait returns no later than needed: the next file of the table starts as the first ends."""
        import time

        rt, clock, listing = setup[0], setup[2], setup[4]
        loop, dispatcher = deferred_loop(rt, clock, listing)
        listing["files"] = [drop(rt, "countries_2024-01-01.csv"), drop(rt, "countries_2024-01-02.csv")]
        for _ in range(3):
            loop.tick()
            clock.advance(1.0)
        assert len(dispatcher.jobs) == 1  # one file of a table at a time
        fn, args, first = dispatcher.jobs[0]
        # The fake clock never moves: only the load ending can make the wait start the next file.
        waiting = threading.Thread(target=loop.wait, kwargs={"seconds": 10.0})
        waiting.start()
        try:
            time.sleep(0.05)
            first.set_result(fn(*args))
            ended = time.monotonic()
            while len(dispatcher.jobs) < 2 and time.monotonic() - ended < 5:
                time.sleep(0.005)
            assert len(dispatcher.jobs) == 2
            assert time.monotonic() - ended < 0.2  # not the next scan, nor a polling period
        finally:
            rt.stop.set()
            waiting.join()
        _fn, _args, second = dispatcher.jobs[1]
        second.set_result(None)

    def test_a_table_takes_its_next_file_once_the_rows_are_committed_not_moved(self, setup):
        """The next file of a table starts when the previous one's publish committed, while that
        one still moves; its later end does not free the table the next file now holds."""
        import time

        rt, clock, listing = setup[0], setup[2], setup[4]
        loop, dispatcher = deferred_loop(rt, clock, listing)
        names = [f"countries_2024-01-0{day}.csv" for day in (1, 2, 3)]
        listing["files"] = [drop(rt, name) for name in names]
        for _ in range(3):
            loop.tick()
            clock.advance(1.0)
        assert len(dispatcher.jobs) == 1
        _fn, args, first = dispatcher.jobs[0]
        assert args[1].path.name == names[0]
        waiting = threading.Thread(target=loop.wait, kwargs={"seconds": 10.0})
        waiting.start()
        try:
            time.sleep(0.05)
            args[2]()  # what process_file calls once the rows are committed
            ended = time.monotonic()
            while len(dispatcher.jobs) < 2 and time.monotonic() - ended < 5:
                time.sleep(0.005)
            assert len(dispatcher.jobs) == 2 and not first.done()
            assert dispatcher.jobs[1][1][1].path.name == names[1]
            first.set_result(None)  # the first file reached processed/
            time.sleep(0.2)
            assert len(dispatcher.jobs) == 2  # the second still holds the table
        finally:
            rt.stop.set()
            waiting.join()
        for _fn, _args, future in dispatcher.jobs[1:]:
            future.set_result(None)
