"""How operator views show values: UTC timestamps with their zone, sizes, durations, aligned tables.

One place for these, so that `status`, `history`, /status and the status page agree: every
timestamp is ISO 8601 in UTC with its zone (``2024-01-31T08:30:00Z``), never a naive local-looking
``2024-01-31 08:30:00``.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Width of a table written to a pipe or a file: wide enough that nothing is cut.
PIPE_WIDTH = 200


def as_utc(value: Any) -> datetime | None:
    """A datetime in UTC; naive values are UTC already (the tracking tables store them so)."""
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: Any) -> Any:
    """``2024-01-31T08:30:00Z`` for a datetime; anything else unchanged."""
    moment = as_utc(value)
    if moment is None:
        return value
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from `start` to `end` (datetimes), or None when either is missing."""
    a, b = as_utc(start), as_utc(end)
    if a is None or b is None:
        return None
    return round((b - a).total_seconds(), 3)


def human_bytes(size: int | None) -> str:
    """``1.4 MB`` (powers of 1000, as file managers show them); ``""`` for unknown."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def human_seconds(seconds: float | None) -> str:
    """``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``; ``""`` for unknown."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def ago(moment: Any, now: datetime | None = None) -> str:
    """``5 min ago`` for a datetime (or an ISO string), ``""`` for unknown."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return ""
    start = as_utc(moment)
    if start is None:
        return ""
    elapsed = ((now or datetime.now(UTC)) - start).total_seconds()
    return "just now" if elapsed < 1 else f"{human_seconds(elapsed)} ago"


def short(text: Any, limit: int = 160) -> str:
    """One line of at most `limit` characters (long error messages stay readable in a table)."""
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Screen:
    """Where a view prints: a rich console with colours and the terminal's width on a TTY; plain
    text without trailing padding elsewhere (a pipe, a file, a test's capture)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self._tty = bool(getattr(self._out, "isatty", lambda: False)())

    def print(self, item: str | Table) -> None:
        """Write one line of text or one table."""
        if self._tty:
            width = shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
            Console(file=self._out, width=width, highlight=False).print(item, markup=False)
            return
        buffer = io.StringIO()
        Console(file=buffer, width=PIPE_WIDTH, no_color=True, highlight=False).print(item, markup=False)
        lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        self._out.write("\n".join(lines) + "\n")


def console(out: IO[str] | None = None) -> Screen:
    """A `Screen` on `out` (default stdout)."""
    return Screen(out)


def table(title: str | None, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """An aligned table; headers ending in ``>`` are right-aligned numbers (the ``>`` is dropped)."""
    # Text, never markup: a file name or an error message may hold "[...]".
    grid = Table(
        title=Text(title) if title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=False,
    )
    for header in headers:
        numeric = header.endswith(">")
        grid.add_column(
            header.rstrip(">"),
            justify="right" if numeric else "left",
            overflow="fold",
            no_wrap=numeric,
        )
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return grid
