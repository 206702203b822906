"""The campaign's figures: what each scenario dropped, injected and checked, printed as one table.

Tests add to the tally of their scenario while they run (`tally(name)`); the conftest hook
prints the table at the end of the session. A fault counts as survived only when the test that
injected it reached its final invariant check and passed it (`Tally.survived`), so a failing
run shows fewer survived faults than injected ones.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Columns of the table, in order: (attribute, heading).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("files_dropped", "files dropped"),
    ("faults_injected", "faults injected"),
    ("faults_survived", "faults survived"),
    ("hostile_inputs", "hostile inputs tried"),
    ("rows_checked", "rows checked"),
    ("files_lost", "files lost (must be 0)"),
    ("double_loads", "double loads (must be 0)"),
    ("half_published", "half-published tables observed (must be 0)"),
)

SCENARIOS = (
    "1 crashes (kill -9)",
    "2 database faults",
    "3 filesystem faults",
    "4 concurrency and load",
    "5 hostile input",
    "6 fuzzing",
    "7 security",
)

#: Environment variable naming a file to write the figures to as JSON (for the README section).
REPORT_ENV = "RELIABILITY_REPORT"


@dataclass
class Tally:
    """Running figures of one scenario."""

    scenario: str
    files_dropped: int = 0
    faults_injected: int = 0
    faults_survived: int = 0
    hostile_inputs: int = 0
    rows_checked: int = 0
    files_lost: int = 0
    double_loads: int = 0
    half_published: int = 0
    notes: list[str] = field(default_factory=list)
    tests: int = 0

    def add(self, **counts: int) -> None:
        with _lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def note(self, text: str) -> None:
        with _lock:
            self.notes.append(text)


class Share:
    """The share of one test in its scenario's tally: faults become survived only at the end."""

    def __init__(self, scenario: str) -> None:
        self.scenario = tally(scenario)
        self.faults = 0
        with _lock:
            self.scenario.tests += 1

    def dropped(self, count: int = 1) -> None:
        self.scenario.add(files_dropped=count)

    def fault(self, count: int = 1) -> None:
        self.faults += count
        self.scenario.add(faults_injected=count)

    def hostile(self, count: int = 1) -> None:
        self.scenario.add(hostile_inputs=count)

    def note(self, text: str) -> None:
        self.scenario.note(text)

    def survived(self) -> None:
        """Call after the final invariant check passed: every fault of this test was survived."""
        self.scenario.add(faults_survived=self.faults)
        self.faults = 0


_lock = threading.Lock()
_tallies: dict[str, Tally] = {}


def tally(scenario: str) -> Tally:
    with _lock:
        return _tallies.setdefault(scenario, Tally(scenario))


def tallies() -> list[Tally]:
    """The scenarios that ran, in scenario order."""
    order = {name: i for i, name in enumerate(SCENARIOS)}
    with _lock:
        return sorted(_tallies.values(), key=lambda t: (order.get(t.scenario, 99), t.scenario))


def render() -> list[str]:
    """The figures as a Markdown table (one row per scenario plus a total), then the notes."""
    rows = tallies()
    if not rows:
        return []
    heads = ["scenario", *(heading for _, heading in COLUMNS)]
    lines = ["| " + " | ".join(heads) + " |", "|---" + "|---:" * len(COLUMNS) + "|"]
    totals = dict.fromkeys((attr for attr, _ in COLUMNS), 0)
    for t in rows:
        cells = []
        for attr, _ in COLUMNS:
            value = getattr(t, attr)
            totals[attr] += value
            cells.append(f"{value:,}")
        lines.append(f"| {t.scenario} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{totals[a]:,}**" for a, _ in COLUMNS) + " |")
    notes = [f"- {t.scenario}: {n}" for t in rows for n in t.notes]
    if notes:
        lines += ["", *notes]
    return lines


def write_report(path: Path) -> None:
    data = [asdict(t) for t in tallies()]
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def report_path() -> Path | None:
    value = os.environ.get(REPORT_ENV)
    return Path(value) if value else None
