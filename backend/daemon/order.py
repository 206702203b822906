"""Per-table order: one file of a table at a time, fullloads by date stamp, the newest stamp current.

Files of one table (whatever drop folder they came through) are loaded one at a time, never two
at once, so which one ends up current does not depend on which worker finished first (issue 14,
item 1). The next file of a table is chosen among those ready:

* the one that became ready first (then by mtime, then name) goes next; when that is a
  fullload, the fullload with the oldest date stamp in its name (then mtime, then name) goes
  instead, so a batch of fullloads dropped together is applied oldest stamp first and the
  newest ends up current; appends keep their arrival order;
* while another file of the same table is still in its stability window, the table waits for
  it (at most one stability window), so files copied together are ordered together.

Whatever the order, `becomes_current` decides for each fullload whether it replaces the table:
by default (``fullload_wins: newest_stamp``) a file whose stamp is older than that of the file
the table holds now (one that arrived late) is kept as a bkp version only; with
``fullload_wins: last_arrival`` every fullload replaces the table. Names without a stamp (and
a table whose current rows came from one, or from a restore) always replace it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from backend import tracking
from backend.daemon import folders as lifecycle
from backend.daemon.runtime import Runtime
from backend.daemon.stability import ReadyFile
from backend.db.engine import Database
from backend.errors import ConfigError
from backend.models import LoadType
from backend.naming import date_stamp, table_name_from_file
from backend.policies import FullloadWins, load_table_policy

log = structlog.get_logger(__name__)


def order_key(name: str, mtime: float) -> tuple[str, float, str]:
    """How fullloads of one table sort: date stamp in the name (none first), then mtime, then name."""
    return (date_stamp(name) or "", mtime, name)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a fullload replaces its table's contents, and if not, why."""

    current: bool
    reason: str | None = None


def becomes_current(db: Database, table: str, name: str, mtime: float, wins: FullloadWins) -> Verdict:
    """Whether fullload `name` (mtime `mtime`) should become `table`'s contents.

    Raises:
        DatabaseUnavailableError: the tracking table cannot be read.
    """
    stamp = date_stamp(name)
    if wins is FullloadWins.LAST_ARRIVAL or stamp is None:
        return Verdict(True)
    holder = tracking.current_fullload(db, table)
    their = date_stamp(holder.file_name) if holder is not None else None
    if holder is None or their is None:
        return Verdict(True)
    if (stamp, mtime, name) >= (their, holder.file_mtime or 0.0, holder.file_name):
        return Verdict(True)
    return Verdict(
        False,
        f"{table} holds {holder.file_name} (load {holder.id}), which is newer by its date stamp; "
        f"{name} is kept as a bkp version only (set fullload_wins: last_arrival in "
        f"config/tables/{table}.yaml to let the last arrival win)",
    )


@dataclass(slots=True)
class _Queued:
    ready: ReadyFile
    table: str
    fullload: bool
    #: The tick that found it ready (arrival order) and when, on the loop's monotonic clock.
    tick: int
    since: float
    #: How it sorts among its table's files: by arrival, and (fullloads) by date stamp.
    arrival: tuple[int, float, str] = field(init=False)
    stamp: tuple[str, float, str] = field(init=False)

    def __post_init__(self) -> None:
        # Computed once: `take` compares them every time a table's next file is chosen.
        name = self.ready.path.name
        self.arrival = (self.tick, self.ready.mtime, name)
        self.stamp = order_key(name, self.ready.mtime)


class TableOrder:
    """Ready files waiting for their table to be free; the loop takes what may start now.

    Args:
        base: the dropoff (to tell a file's drop folder and so its load type).
        max_identifier_length: the database's limit, for table names.
        hold_seconds: longest wait for a sibling of the same table still in its stability window.
    """

    def __init__(self, base: Path, max_identifier_length: int, hold_seconds: float) -> None:
        self._base = base
        self._max_length = max_identifier_length
        self._hold_seconds = hold_seconds
        self._queued: dict[Path, _Queued] = {}
        #: The same files by table (each table's own dict, in the order they were queued).
        self._by_table: dict[str, dict[Path, _Queued]] = {}
        self._busy: dict[str, Path] = {}
        self._tables: dict[Path, tuple[str, bool] | None] = {}
        self._ticks = 0

    def add(self, ready: Iterable[ReadyFile], now: float) -> list[ReadyFile]:
        """Queue files that became ready; returns those outside any drop folder (not ordered)."""
        self._ticks += 1
        loose: list[ReadyFile] = []
        for item in ready:
            target = self._table_of(item.path)
            if target is None:
                loose.append(item)
                continue
            self._drop(item.path)
            queued = _Queued(item, target[0], target[1], self._ticks, now)
            self._queued[item.path] = queued
            self._by_table.setdefault(queued.table, {})[item.path] = queued
        return loose

    def _drop(self, path: Path) -> None:
        queued = self._queued.pop(path, None)
        if queued is not None:
            siblings = self._by_table[queued.table]
            del siblings[path]
            if not siblings:
                del self._by_table[queued.table]

    def take(
        self, now: float, waiting: Iterable[Path], still_ready: Callable[[Path], bool]
    ) -> list[ReadyFile]:
        """The next file of every table that is free, not held for a sibling still settling.

        Args:
            now: the loop's monotonic clock.
            waiting: files still in their stability window.
            still_ready: whether a queued file is still as it was found ready (unchanged, present).
        """
        settling = {t[0] for t in map(self._table_of, waiting) if t is not None}
        out: list[ReadyFile] = []
        for table in sorted(self._by_table.keys() - self._busy.keys()):
            # Only the files of free tables are looked at, and of those only the one chosen
            # (a burst of 1,000 files of one table would otherwise re-check all of them each
            # time one settles): a file that changed or went is dropped when its turn comes,
            # and the tracker reports it again once it is stable.
            if table in settling:
                for path in [p for p in self._by_table[table] if not still_ready(p)]:
                    self._drop(path)
                items = self._by_table.get(table, {}).values()
                if items and now - min(q.since for q in items) < self._hold_seconds:
                    continue
            first = self._first(table, still_ready)
            if first is None:
                continue
            self._drop(first.ready.path)
            self._busy[table] = first.ready.path
            out.append(first.ready)
        return out

    def _first(self, table: str, still_ready: Callable[[Path], bool]) -> _Queued | None:
        """The file of `table` that goes next, dropping those found changed or gone on the way."""
        while table in self._by_table:
            items = self._by_table[table].values()
            first = min(items, key=lambda q: q.arrival)
            if first.fullload and still_ready(first.ready.path):
                first = min((q for q in items if q.fullload), key=lambda q: q.stamp)
            if still_ready(first.ready.path):
                return first
            self._drop(first.ready.path)
        return None

    def finished(self, path: Path) -> None:
        """The file's settling ended (whatever the outcome): its table is free again."""
        for table, busy in list(self._busy.items()):
            if busy == path:
                del self._busy[table]
        self._tables.pop(path, None)

    def clear(self) -> list[Path]:
        """Drop every queued file (the database is away); returns their paths."""
        paths = list(self._queued)
        self._queued.clear()
        self._by_table.clear()
        return paths

    def queued(self) -> int:
        return len(self._queued)

    def _table_of(self, path: Path) -> tuple[str, bool] | None:
        if path not in self._tables:
            kind = lifecycle.classify(path, self._base)
            if len(self._tables) > 50_000:
                self._tables.clear()  # a cache, not a record: forget names of long-gone files
            self._tables[path] = (
                None
                if kind is None
                else (table_name_from_file(path, self._max_length), kind[1] is LoadType.FULLLOAD)
            )
        return self._tables[path]


def current_or_version(rt: Runtime, table: str, path: Path, mtime: float, load_type: LoadType) -> Verdict:
    """Whether this fullload replaces its table, by the table's `fullload_wins` policy (appends: yes)."""
    if load_type is not LoadType.FULLLOAD:
        return Verdict(True)
    policy = load_table_policy(rt.settings.config_dir, table)
    verdict = becomes_current(rt.db, table, path.name, mtime, policy.fullload_wins)
    if not verdict.current:
        log.warning("older than the table's current file; loading it as a version only", file=path.name,
                    reason=verdict.reason)  # fmt: skip
    return verdict


def policy_valid(rt: Runtime, table: str) -> bool:
    """Whether `table`'s policy file reads; if not, its files wait (never sent to error/ as bad data).

    A policy edited while the daemon runs can hold a typo; the files are fine. The problem is
    logged once per change of the error, and shown by /status, until the file is fixed.
    """
    try:
        load_table_policy(rt.settings.config_dir, table)
    except ConfigError as exc:
        if rt.policy_problem(table, str(exc)):
            log.error(
                "files of this table wait: its policy file is invalid; they load once it is fixed",
                table=table,
                error=str(exc),
            )
        return False
    if rt.policy_problem(table, None):
        log.info("policy file valid again; loading the table's files", table=table)
    return True
