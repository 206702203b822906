"""systemd's sd_notify protocol: tell the service manager we are ready, alive or stopping.

The manager passes a datagram socket in ``NOTIFY_SOCKET`` (a path, or an abstract socket
written with a leading ``@``). Without it, e.g. run by hand or on Windows, every call is a
no-op. Ping the watchdog from the main loop, never from a side thread: a stuck loop must
stop the pings so that systemd restarts the daemon.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends state lines ("READY=1", "WATCHDOG=1", ...) to the service manager."""

    def __init__(self, address: str | None) -> None:
        self._address = address or None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``NOTIFY_SOCKET`` (no-op when it is unset)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send the assignments as one datagram; False if disabled or the send failed.

        A failed notification is logged and swallowed: it must never stop the daemon.
        """
        if self._address is None or not assignments:
            return False
        address = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(address)
                sock.sendall("\n".join(assignments).encode("utf-8"))
        except OSError as exc:
            log.warning("sd_notify failed", error=exc.strerror or type(exc).__name__)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up finished: the unit leaves "activating"."""
        return self.notify("READY=1", *([_status_line(status)] if status else []))

    def watchdog(self) -> bool:
        """Still alive (send at least every `watchdog_interval_seconds()`)."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown started."""
        return self.notify("STOPPING=1", *([_status_line(status)] if status else []))

    def status(self, text: str) -> bool:
        """One line shown by ``systemctl status``."""
        return self.notify(_status_line(text))


class Heartbeat:
    """The main loop's pulse: when it last ran, and the systemd watchdog pinged at half its timeout.

    The loop calls `beat` wherever it spends time (each sleep step, every few hundred files of a
    scan or a stability check), so a slow scan or a long MONITOR_INTERVAL never starves the
    watchdog, while a loop that is truly stuck stops beating and gets the service restarted.
    Pings come from the loop's own thread, never from a side thread.
    """

    def __init__(
        self,
        notifier: Notifier,
        interval_seconds: float | None,
        clock: Callable[[], float] = time.monotonic,
        on_beat: Callable[[float], None] | None = None,
    ) -> None:
        self._notifier = notifier
        self._interval = interval_seconds
        self._clock = clock
        self._on_beat = on_beat
        self._due = 0.0
        self.last = clock()

    @property
    def step_seconds(self) -> float:
        """The longest the loop may wait between two beats."""
        return min(0.25, self._interval / 2) if self._interval else 0.25

    def beat(self) -> None:
        now = self._clock()
        self.last = now
        if self._on_beat is not None:
            self._on_beat(now)
        if self._interval is not None and now >= self._due:
            self._notifier.watchdog()
            self._due = now + self._interval


class StatusLine:
    """The one line ``systemctl status`` shows: what waits, what loads, what today brought."""

    #: Seconds between two STATUS= updates (they change with every file of a burst).
    EVERY_SECONDS = 2.0

    def __init__(self, notify: Notifier) -> None:
        self._notify = notify
        self._day = ""
        self._counts: dict[str, int] = {}
        self._shown = ""
        self._at = 0.0

    def count(self, outcome: str) -> None:
        self._roll()
        self._counts[outcome] = self._counts.get(outcome, 0) + 1

    def _roll(self) -> None:
        today = time.strftime("%Y-%m-%d", time.gmtime())
        if today != self._day:
            self._day, self._counts = today, {}

    def show(self, base: Path, waiting: int, in_flight: int, db_ok: bool) -> None:
        if not self._notify.enabled:
            return
        self._roll()  # midnight UTC starts a new day even when nothing arrives
        text = (
            f"watching {base}: {waiting} waiting, {in_flight} loading; today (UTC) "
            f"{self._counts.get('loaded', 0)} loaded, {self._counts.get('duplicate', 0)} duplicate, "
            f"{self._counts.get('error', 0)} errors" + ("" if db_ok else "; database unavailable, retrying")
        )
        now = time.monotonic()
        if text != self._shown and now - self._at >= self.EVERY_SECONDS:
            self._notify.status(text)
            self._shown, self._at = text, now


def ready(status: str | None = None) -> bool:
    """READY=1 to ``NOTIFY_SOCKET`` (no-op without it)."""
    return Notifier.from_environment().ready(status)


def watchdog() -> bool:
    """WATCHDOG=1 to ``NOTIFY_SOCKET`` (no-op without it)."""
    return Notifier.from_environment().watchdog()


def stopping(status: str | None = None) -> bool:
    """STOPPING=1 to ``NOTIFY_SOCKET`` (no-op without it)."""
    return Notifier.from_environment().stopping(status)


def status(text: str) -> bool:
    """STATUS=<text> to ``NOTIFY_SOCKET`` (no-op without it)."""
    return Notifier.from_environment().status(text)


def _status_line(text: str) -> str:
    return "STATUS=" + " ".join(text.split())


def watchdog_interval_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1: half of ``WATCHDOG_USEC``, or None when not enabled.

    ``WATCHDOG_PID``, when set, must be this process (a child must not ping for its parent).
    """
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None
