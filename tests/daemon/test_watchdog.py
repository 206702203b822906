"""systemd hears the truth: watchdog pings at half WATCHDOG_USEC whatever the loop does, STATUS= counts.

Each test runs the real daemon as a subprocess with a fake ``NOTIFY_SOCKET`` (a datagram socket
the test binds) and records every notification with the time it arrived.
"""

from __future__ import annotations

import itertools
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.daemon.notify import Heartbeat, Notifier
from tests.daemon.support import Daemon, drop, wait_for

pytestmark = pytest.mark.daemon


class Listener:
    """A fake systemd: the notification socket, and every datagram with its arrival time."""

    def __init__(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="notify-")
        self.path = os.path.join(self._folder, "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode("utf-8").splitlines():
                self.messages.append((time.monotonic(), line))

    def pings(self) -> list[float]:
        return [t for t, line in self.messages if line == "WATCHDOG=1"]

    def statuses(self) -> list[str]:
        return [line for _, line in self.messages if line.startswith("STATUS=")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        os.unlink(self.path)
        os.rmdir(self._folder)


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


def start(tmp_path: Path, listener: Listener, **env: str) -> Daemon:
    d = Daemon(
        tmp_path,
        f"sqlite:///{tmp_path / 'data' / 'refdata.db'}",
        {"NOTIFY_SOCKET": listener.path, "HEALTH_ENABLED": "false", **env},
    )
    # WATCHDOG_PID must be the daemon itself: leave it unset (systemd sets it for the main PID).
    return d.start()


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


class TestWatchdog:
    def test_pings_come_at_half_the_timeout_with_a_long_monitor_interval(self, tmp_path, listener):
        """MONITOR_INTERVAL=30 with WatchdogSec=2: pings still arrive about every second."""
        d = start(tmp_path, listener, WATCHDOG_USEC="2000000", MONITOR_INTERVAL="30", FORCE_POLLING="true")
        try:
            wait_for(lambda: len(listener.pings()) >= 6, timeout=30, what="six watchdog pings")
        finally:
            assert d.terminate() == 0
        pings = listener.pings()
        assert any(line == "READY=1" for _, line in listener.messages)
        assert max(gaps(pings[:6])) < 1.6, gaps(pings)

    def test_a_slow_scan_of_ten_thousand_files_does_not_starve_the_watchdog(self, tmp_path, listener):
        """While one scan lists and logs 10,000 entries, the pings keep coming at half the timeout."""
        folder = tmp_path / "dropoff" / "reference_data_table" / "fullload"
        folder.mkdir(parents=True)
        for i in range(10_000):
            (folder / f"f{i:05d}.skipme").write_bytes(b"x")
        d = start(tmp_path, listener, WATCHDOG_USEC="1000000", MONITOR_INTERVAL="0.5", FORCE_POLLING="true")
        try:
            wait_for(lambda: "file skipped" in d.log(), timeout=60, what="the first scan")
            wait_for(lambda: len(listener.pings()) >= 10, timeout=60, what="ten watchdog pings")
        finally:
            assert d.terminate() == 0
        assert d.log().count("file skipped") >= 10_000
        assert max(gaps(listener.pings()[:10])) < 1.0, gaps(listener.pings())

    def test_a_stuck_loop_stops_the_pings(self, tmp_path, listener):
        """A loop that hangs (its third tick stalls 4 s) sends no ping, so systemd would restart it."""
        d = start(
            tmp_path,
            listener,
            WATCHDOG_USEC="1000000",
            MONITOR_INTERVAL="0.3",
            FORCE_POLLING="true",
            REFDATA_FAULTS="loop.tick@3=sleep:4",
        )
        try:
            wait_for(lambda: len(listener.pings()) >= 6, timeout=30, what="pings after the stall")
        finally:
            assert d.terminate() == 0
        assert max(gaps(listener.pings())) > 3.5, gaps(listener.pings())


class TestStatusLine:
    def test_status_counts_waiting_and_loaded_files(self, tmp_path, listener):
        """STATUS= tells systemctl what waits and what was loaded today."""
        d = start(tmp_path, listener, MONITOR_INTERVAL="0.2", STABILITY_CHECKS="2")
        try:
            wait_for(lambda: listener.statuses(), timeout=30, what="a first STATUS line")
            drop(d.folder() / "countries.csv", "code,name\nDE,Germany\n")
            wait_for(
                lambda: any("1 loaded" in s for s in listener.statuses()),
                timeout=30,
                what="STATUS with 1 loaded",
            )
        finally:
            assert d.terminate() == 0
        assert any("0 waiting, 0 loading" in s for s in listener.statuses())


class TestHeartbeat:
    def test_beats_ping_once_per_interval(self):
        """However often the loop beats, the watchdog hears one ping per interval."""
        sent: list[str] = []

        class Recorder(Notifier):
            def notify(self, *assignments: str) -> bool:
                sent.extend(assignments)
                return True

        now = [0.0]
        pulse = Heartbeat(Recorder("x"), 1.0, clock=lambda: now[0])
        for _ in range(40):
            pulse.beat()
            now[0] += 0.1
        assert sent.count("WATCHDOG=1") == 4
        assert pulse.step_seconds == 0.25
        assert Heartbeat(Recorder("x"), 0.2).step_seconds == 0.1
