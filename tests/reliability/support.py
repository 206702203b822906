"""Shared machinery of the reliability campaign: daemons, a ledger of dropped files, the invariants.

A `Campaign` owns one dropoff and one database. Tests drop files through it (each drop is
written in the ledger with the rows it holds and what must become of it), inject faults into
the real daemon processes, wait until everything settled, and call `Campaign.check()`, which
asserts every invariant of the issue after every scenario:

- every dropped file ends in processed/ or error/ exactly once (or is still waiting, by design),
  with exactly one final tracking row (loaded, duplicate, error or cancelled) whose `moved_to`
  is where the file is, and error/ files have a sidecar giving the reason;
- every committed load equals its file: row count and a checksum of all cells, read back by
  exporting the live table (and, for earlier fullloads, their bkp version);
- no append is applied twice; no tracking row is left in ``processing``;
- the daemons still run and /healthz answers.

`SnapshotReader` is the concurrent reader: it reads the watched fullload tables in a loop while
the scenario runs and records every state that is not one complete version of a file (an empty
table, a mix of two versions, a partial version).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from backend.daemon.folders import SIDECAR_SUFFIX, read_sidecar
from backend.db import Database, open_database
from backend.ops.export import export_table
from tests.conftest import psycopg_conninfo
from tests.daemon import support as base
from tests.daemon.support import FOLDERS, free_port, wait_for
from tests.reliability.figures import Share
from tests.support import make_settings

TRACKING = 'ref."File_Monitor_Tracking"'
#: Statuses that close a file's journey; `retry` and `interrupted` only record an attempt.
TERMINAL = ("loaded", "duplicate", "error", "cancelled")
#: What may become of a dropped file.
EXPECTATIONS = ("loaded", "error", "final", "duplicate", "gone", "waiting", "ignored")
IS_ROOT = os.geteuid() == 0
SETPRIV = shutil.which("setpriv")

# ----------------------------------------------------------------------------------- daemons


@dataclass
class Daemon(base.Daemon):
    """`tests.daemon.support.Daemon`, optionally without root's power to ignore file permissions.

    With `unprivileged` and the tests running as root, the daemon runs as root without
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so file modes bind it like any service account
    (a non-root user could not start the venv's interpreter under /root).
    """

    unprivileged: bool = False

    def start(self) -> Daemon:
        self.dropoff.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "backend", "--env-file", "/nonexistent/.env", "run"]
        if self.unprivileged and IS_ROOT:
            assert SETPRIV is not None, "setpriv (util-linux) is needed to drop capabilities"
            command = [SETPRIV, "--bounding-set=-dac_override,-dac_read_search", "--", *command]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=base.REPO, env=self.environment(), stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def rss_mb(self) -> float:
        assert self.proc is not None
        return float(psutil.Process(self.proc.pid).memory_info().rss) / (1024 * 1024)

    def healthy(self) -> bool:
        return self.alive() and self.get("/healthz")[0] == 200


def can_drop_privileges() -> str | None:
    """None if `Daemon(unprivileged=True)` really binds the daemon to file modes, else why not."""
    if IS_ROOT and SETPRIV is None:
        return "running as root and setpriv (util-linux) is not installed to drop CAP_DAC_OVERRIDE"
    return None


# ------------------------------------------------------------------------------------- files


def stream_name(stem: str, n: int) -> str:
    """``<stem>_<YYYYMMDD>.csv``: the date is stripped from table names, so all go to table `stem`."""
    return f"{stem}_{date(2000, 1, 1) + timedelta(days=n):%Y%m%d}.csv"


def digest_rows(rows: Iterable[Sequence[str]]) -> tuple[str, int]:
    """Checksum of all cells (in order) and the row count: what `Campaign.check` compares."""
    h = hashlib.sha256()
    n = 0
    for row in rows:
        h.update("\x1f".join(row).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
        n += 1
    return h.hexdigest(), n


def tagged_rows(tag: str, count: int, payload_bytes: int = 20) -> Iterator[tuple[str, str, str]]:
    """Rows ``(tag, i, payload)``; every cell is plain ASCII, so any dialect reads them back alike."""
    pad = "x" * max(0, payload_bytes - 12)
    for i in range(count):
        yield (tag, str(i), f"p{i:010d}{pad}")


def rows_for_size(size_bytes: int, payload_bytes: int = 60) -> int:
    """How many `tagged_rows` make a file of about `size_bytes`."""
    return max(1, size_bytes // (payload_bytes + 18))


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> tuple[str, int]:
    """Write a plain comma-separated file (no quoting needed for the cells used); returns (sha256, size)."""
    h = hashlib.sha256()
    size = 0
    with path.open("wb") as f:
        chunk: list[str] = [",".join(header) + "\n"]
        for row in rows:
            chunk.append(",".join(row) + "\n")
            if len(chunk) >= 4096:
                data = "".join(chunk).encode()
                f.write(data)
                h.update(data)
                size += len(data)
                chunk = []
        data = "".join(chunk).encode()
        f.write(data)
        h.update(data)
        size += len(data)
    return h.hexdigest(), size


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------ ledger


@dataclass
class Drop:
    """One file dropped by a test, with what it holds and what must become of it."""

    path: Path
    load_type: str
    expect: str
    sha256: str | None
    size: int
    table: str | None = None
    rows: Callable[[], Iterable[Sequence[str]]] | None = None
    digest: str | None = None
    n_rows: int = 0
    reason: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        assert self.expect in EXPECTATIONS, self.expect
        if self.rows is not None and self.digest is None:
            self.digest, self.n_rows = digest_rows(self.rows())


@dataclass
class Outcome:
    """What `Campaign.check` found, for the test's own extra assertions."""

    terminal: dict[int, dict[str, Any]] = field(default_factory=dict)  # drop index -> its final row
    rows_checked: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


class Campaign:
    """A dropoff, a database, the daemons running on them and the ledger of dropped files."""

    def __init__(self, root: Path, url: str, share: Share) -> None:
        self.root = root
        self.url = url
        self.share = share
        self.daemons: list[Daemon] = []
        self.drops: list[Drop] = []
        self.readers: list[SnapshotReader] = []
        self.db: Database = open_database(make_settings(root, url))
        (root / "dropoff").mkdir(parents=True, exist_ok=True)
        self._names: Counter[str] = Counter()

    # -- daemons --------------------------------------------------------------------------
    def daemon(self, name: str | None = None, *, unprivileged: bool = False, **env: Any) -> Daemon:
        """Start one more daemon on this dropoff and database (not waiting for it to be healthy)."""
        name = name or f"d{len(self.daemons) + 1}"
        self._names[name] += 1
        if self._names[name] > 1:
            name = f"{name}.{self._names[name]}"
        d = Daemon(
            self.root,
            self.url,
            {k.upper(): str(v) for k, v in env.items()},
            name=name,
            port=free_port(),
            unprivileged=unprivileged,
        )
        self.daemons.append(d)
        return d.start()

    def logs(self) -> str:
        return "".join(d.log() for d in self.daemons)

    def folder(self, kind: str = "ref", mode: str = "fullload") -> Path:
        return self.root / "dropoff" / FOLDERS[(kind, mode)]

    # -- drops ----------------------------------------------------------------------------
    def drop_rows(
        self,
        kind: str,
        mode: str,
        name: str,
        rows: Callable[[], Iterable[Sequence[str]]],
        *,
        header: Sequence[str] = ("version", "seq", "payload"),
        expect: str = "loaded",
        version: str | None = None,
        table: str | None = None,
    ) -> Drop:
        """Write a CSV through a hidden temp name, then rename it into the drop folder."""
        folder = self.folder(kind, mode)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.part"
        sha, size = write_csv(tmp, header, rows())
        os.replace(tmp, folder / name)
        drop = Drop(folder / name, mode, expect, sha, size, table=table, rows=rows, version=version)
        return self._record(drop)

    def drop_tagged(
        self, kind: str, mode: str, stem: str, n: int, count: int, payload_bytes: int = 20, **kw: Any
    ) -> Drop:
        """A file ``<stem>_<date n>.csv`` of `count` rows tagged ``f<n>`` (the tag is the version)."""
        tag = f"f{n:05d}"
        return self.drop_rows(
            kind,
            mode,
            stream_name(stem, n),
            lambda: tagged_rows(tag, count, payload_bytes),
            version=tag,
            table=stem,
            **kw,
        )

    def drop_bytes(
        self,
        kind: str,
        mode: str,
        name: str,
        data: bytes,
        *,
        expect: str,
        rows: Sequence[Sequence[str]] | None = None,
        table: str | None = None,
        reason: str | None = None,
        direct: bool = False,
        file_mode: int | None = None,
    ) -> Drop:
        """Drop raw bytes (through a temp name unless `direct`); `rows` are the cells it must load as."""
        folder = self.folder(kind, mode)
        target = folder / name
        tmp = target if direct else folder / ".drop.part"
        tmp.write_bytes(data)
        if file_mode is not None:
            tmp.chmod(file_mode)
        if not direct:
            os.replace(tmp, target)
        kept = [tuple(r) for r in rows] if rows is not None else None
        drop = Drop(
            target,
            mode,
            expect,
            hashlib.sha256(data).hexdigest(),
            len(data),
            table=table,
            rows=(lambda: kept) if kept is not None else None,
            reason=reason,
        )
        return self._record(drop)

    def record(self, drop: Drop) -> Drop:
        """Add a file the test placed itself (a FIFO, a link, a file of another owner)."""
        return self._record(drop)

    def _record(self, drop: Drop) -> Drop:
        self.drops.append(drop)
        self.share.dropped()
        for reader in self.readers:
            reader.expect(drop)
        return drop

    # -- database -------------------------------------------------------------------------
    def tracking(self) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    sa.text(
                        "SELECT id, file_path, file_name, file_hash, status, table_name, load_type, "
                        "moved_to, rows_loaded, error_message, error_stage, owner "
                        f"FROM {TRACKING} ORDER BY id"
                    )
                )
            ]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def attempts(self, status: str, mentioning: str) -> int:
        """Tracking rows of `status` whose error message mentions `mentioning`."""
        return sum(
            1 for r in self.tracking() if r["status"] == status and mentioning in (r["error_message"] or "")
        )

    def count(self, table: str) -> int:
        """Rows in ``ref.<table>``; 0 while it does not exist."""
        try:
            return int(self.scalar(f'SELECT COUNT(*) FROM ref."{table}"'))
        except sa.exc.SQLAlchemyError:
            return 0

    def processing(self) -> list[dict[str, Any]]:
        return [r for r in self.tracking() if r["status"] == "processing"]

    def reader(self, interval: float = 0.01) -> SnapshotReader:
        """Start a concurrent reader of the fullload tables dropped with a version tag."""
        reader = SnapshotReader(self.db.engine, interval)
        for drop in self.drops:
            reader.expect(drop)
        self.readers.append(reader)
        reader.start()
        return reader

    # -- settling -------------------------------------------------------------------------
    def pending(self) -> list[Drop]:
        """Drops that must still reach their final state (by the ledger and the tracking table)."""
        rows = self.tracking()
        # Final and recorded: a row turns final a moment before its file's new place is written.
        # Per drop, attributed as `check` does: a file name dropped again (a good version, then a
        # broken one) must not count as settled on the strength of the earlier drop's row.
        final_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r["status"] in TERMINAL and r["moved_to"]:
                final_rows[r["file_path"]].append(r)
        drops_by_path = self._drops_by_path()
        busy = any(r["status"] == "processing" for r in rows)
        waiting = []
        for i, drop in enumerate(self.drops):
            if drop.expect not in ("loaded", "error", "final", "duplicate"):
                continue
            recorded = any(self._is_mine(r, i, drops_by_path) for r in final_rows[str(drop.path)])
            if os.path.lexists(drop.path) or not recorded:
                waiting.append(drop)
        if busy and not waiting:
            return [d for d in self.drops if d.expect != "ignored"][:1]
        return waiting

    def wait_settled(self, timeout: float = 120.0) -> None:
        """Wait until every dropped file reached its final place and nothing is processing."""
        last: list[Drop] = []

        def settled() -> bool:
            nonlocal last
            last = self.pending()
            return not last

        try:
            # Each poll reads the whole tracking table: poll less often when there are thousands.
            interval = 0.25 if len(self.drops) < 1000 else 2.0
            wait_for(settled, timeout, interval=interval, what="every dropped file settled")
        except AssertionError:
            names = [d.path.name for d in last[:10]]
            raise AssertionError(
                f"{len(last)} file(s) not settled after {timeout}s, e.g. {names}; "
                f"daemons alive: {[d.alive() for d in self.daemons]}"
            ) from None

    # -- invariants -----------------------------------------------------------------------
    def check(self, daemons: Sequence[Daemon] | None = None) -> Outcome:
        """Assert every invariant; add the figures (rows checked, lost, double, half-published)."""
        outcome = Outcome()
        rows = self.tracking()
        outcome.statuses = Counter(r["status"] for r in rows)
        problems: list[str] = []
        stuck = [r["id"] for r in rows if r["status"] == "processing"]
        if stuck:
            problems.append(f"tracking rows left in processing: {stuck}")
        by_path: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_path[r["file_path"]].append(r)
        drops_by_path = self._drops_by_path()

        lost = double = 0
        claimed_moves: Counter[str] = Counter()
        load_to_drop: dict[int, int] = {}
        for i, drop in enumerate(self.drops):
            mine = [r for r in by_path[str(drop.path)] if self._is_mine(r, i, drops_by_path)]
            terminal = [r for r in mine if r["status"] in TERMINAL]
            loaded = [r for r in mine if r["status"] == "loaded"]
            for r in loaded:
                load_to_drop[r["id"]] = i
            if len(loaded) > 1:
                double += len(loaded) - 1
                problems.append(f"{drop.path.name}: loaded {len(loaded)} times ({[r['id'] for r in loaded]})")
            for r in terminal:
                if r["moved_to"]:
                    claimed_moves[r["moved_to"]] += 1
            still_there = os.path.lexists(drop.path)
            if drop.expect == "ignored":
                if mine or not still_there:
                    problems.append(
                        f"{drop.path.name}: should have been left alone, found {self._brief(mine)}"
                    )
                continue
            if drop.expect == "waiting":
                if terminal or not still_there:
                    problems.append(f"{drop.path.name}: should still wait, found {self._brief(mine)}")
                continue
            if drop.expect == "gone":
                moved = [r for r in terminal if r["moved_to"]]
                if moved or still_there:
                    problems.append(f"{drop.path.name}: was deleted by the test, found {self._brief(mine)}")
                continue
            if len(terminal) != 1:
                if not terminal and not still_there:
                    lost += 1
                problems.append(
                    f"{drop.path.name}: {len(terminal)} final tracking rows (expected 1): {self._brief(mine)}"
                )
                continue
            final = terminal[0]
            outcome.terminal[i] = final
            problems += self._check_final(drop, final, still_there)
            if final["moved_to"] and not os.path.lexists(final["moved_to"]) and not still_there:
                lost += 1

        problems += self._orphans(claimed_moves)
        checked, table_problems, extra_double = self._check_tables(rows, load_to_drop)
        problems += table_problems
        double += extra_double
        outcome.rows_checked = checked
        half = sum(len(r.violations) for r in self.readers)
        for reader in self.readers:
            problems += [f"concurrent reader saw {v}" for v in reader.violations[:10]]
        for d in daemons if daemons is not None else [d for d in self.daemons if d.alive()]:
            if not d.alive():
                problems.append(f"daemon {d.name} is not running (exit {d.proc.poll() if d.proc else None})")
            elif d.get("/healthz")[0] != 200:
                problems.append(f"daemon {d.name}: /healthz does not answer 200")
        self.share.scenario.add(
            rows_checked=checked, files_lost=lost, double_loads=double, half_published=half
        )
        for reader in self.readers:
            reader.reset()
        assert not problems, "invariants violated:\n  " + "\n  ".join(problems[:40])
        return outcome

    def _drops_by_path(self) -> dict[str, list[int]]:
        """Indexes into `drops` of every drop, by the path it was dropped at."""
        by_path: dict[str, list[int]] = defaultdict(list)
        for i, drop in enumerate(self.drops):
            by_path[str(drop.path)].append(i)
        return by_path

    def _is_mine(self, row: dict[str, Any], index: int, drops_by_path: dict[str, list[int]]) -> bool:
        same_path = drops_by_path[row["file_path"]]
        if len(same_path) == 1 or row["file_hash"] is None:
            return True
        return row["file_hash"] == self.drops[index].sha256

    @staticmethod
    def _brief(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(r["id"], r["status"], r["moved_to"], (r["error_message"] or "")[:80]) for r in rows]

    def _check_final(self, drop: Drop, final: dict[str, Any], still_there: bool) -> list[str]:
        problems: list[str] = []
        name, status, moved_to = drop.path.name, final["status"], final["moved_to"]
        wanted = {"loaded": ("loaded",), "duplicate": ("duplicate",), "error": ("error", "cancelled")}
        allowed = wanted.get(drop.expect, TERMINAL)
        if status not in allowed:
            problems.append(f"{name}: ended {status} ({final['error_message']}), expected {drop.expect}")
        if still_there:
            problems.append(f"{name}: still in the drop folder although its tracking row is {status}")
        sub = "processed" if status in ("loaded", "duplicate") else "error"
        if not moved_to or Path(moved_to).parent != drop.path.parent / sub:
            problems.append(f"{name}: {status} but moved_to is {moved_to!r}, not in {sub}/")
            return problems
        moved = Path(moved_to)
        if not os.path.lexists(moved):
            problems.append(f"{name}: moved_to {moved_to} does not exist")
            return problems
        if drop.sha256 is not None and moved.is_file() and not moved.is_symlink():
            with contextlib.suppress(PermissionError):
                if sha256_of(moved) != drop.sha256:
                    problems.append(f"{name}: the file in {sub}/ differs from what was dropped")
        if sub == "error":
            sidecar = read_sidecar(moved)
            reason = (sidecar or {}).get("reason") or ""
            if not reason:
                problems.append(f"{name}: no sidecar reason beside {moved.name}")
            if not final["error_message"]:
                problems.append(f"{name}: tracking row {final['id']} gives no reason")
            if (
                drop.reason
                and drop.reason.lower() not in (reason + " " + (final["error_message"] or "")).lower()
            ):
                problems.append(f"{name}: reason {reason!r} does not mention {drop.reason!r}")
        return problems

    def _orphans(self, claimed: Counter[str]) -> list[str]:
        """Every data file in processed/ and error/ belongs to exactly one final tracking row."""
        problems = []
        for kind, mode in FOLDERS:
            for sub in ("processed", "error"):
                target = self.folder(kind, mode) / sub
                if not target.is_dir():
                    continue
                for entry in os.scandir(target):
                    if entry.name.startswith(".") or entry.name.endswith((SIDECAR_SUFFIX, ".done", ".ok")):
                        continue
                    count = claimed[entry.path]
                    if count != 1:
                        problems.append(f"{sub}/{entry.name}: named by {count} final tracking rows")
        return problems

    def _check_tables(
        self, rows: list[dict[str, Any]], load_to_drop: dict[int, int]
    ) -> tuple[int, list[str], int]:
        """Export every loaded table and compare it with the files loaded into it."""
        problems: list[str] = []
        checked = double = 0
        loads: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r["status"] == "loaded":
                loads[r["table_name"]].append(r)
        for table, table_loads in loads.items():
            unknown = [r["id"] for r in table_loads if r["id"] not in load_to_drop]
            if unknown:
                problems.append(f"{table}: loads {unknown} match no dropped file")
                continue
            drops = {r["id"]: self.drops[load_to_drop[r["id"]]] for r in table_loads}
            if any(d.digest is None for d in drops.values()):
                continue  # a hostile file whose cells the test does not predict
            for d in drops.values():
                if d.table is not None and d.table != table:
                    problems.append(f"{d.path.name}: loaded into {table}, expected {d.table}")
            with self.db.engine.connect() as conn:
                live_ids = [
                    int(v) for (v,) in conn.execute(sa.text(f'SELECT DISTINCT _load_id FROM ref."{table}"'))
                ]
            modes = {r["load_type"] for r in table_loads}
            if modes == {"append"}:
                expected = [drops[r["id"]] for r in sorted(table_loads, key=lambda r: r["id"])]
                ids = sorted(r["id"] for r in table_loads)
                if sorted(live_ids) != ids:
                    problems.append(f"{table}: live load ids {sorted(live_ids)} != loaded {ids}")
                want, n = _concat_digest(expected)
                got, m = self._export_digest(table)
                checked += m
                if (got, m) != (want, n):
                    problems.append(
                        f"{table}: exported {m} rows, expected {n}; checksum equal: {got == want}"
                    )
                continue
            if modes != {"fullload"}:
                problems.append(f"{table}: mixed load types {modes}")
                continue
            if len(live_ids) != 1 or live_ids[0] not in drops:
                problems.append(
                    f"{table}: live rows come from loads {live_ids}, expected one of {list(drops)}"
                )
                continue
            current = drops[live_ids[0]]
            got, m = self._export_digest(table)
            checked += m
            if (got, m) != (current.digest, current.n_rows):
                problems.append(
                    f"{table}: exported {m} rows, file {current.path.name} has {current.n_rows}; "
                    f"checksum equal: {got == current.digest}"
                )
            versions = self._bkp_versions(table)
            pruned = self._pruned_loads(table)
            for load_id, drop in drops.items():
                if load_id == live_ids[0] or load_id in pruned:
                    continue
                version = versions.get(load_id)
                if version is None:
                    problems.append(f"{table}: load {load_id} ({drop.path.name}) is neither live nor in bkp")
                    continue
                got, m = self._export_digest(table, version)
                checked += m
                if (got, m) != (drop.digest, drop.n_rows):
                    problems.append(f"{table}: bkp version {version} differs from {drop.path.name}")
        return checked, problems, double

    def _bkp_versions(self, table: str) -> dict[int, int]:
        """load id -> kept version holding that load's rows (each version is its load's table)."""
        from backend.tracking import versions

        with self.db.engine.connect() as conn:
            kept = [v for v in versions.versions_of(conn, self.db, table) if v.state == versions.KEPT]
        return {v.load_id: v.version for v in kept}

    def _pruned_loads(self, table: str) -> set[int]:
        """Loads whose version retention (KEEP_VERSIONS) dropped: neither live nor kept, by design."""
        from backend.tracking import versions

        with self.db.engine.connect() as conn:
            every = versions.versions_of(conn, self.db, table, include_dropped=True)
        return {v.load_id for v in every if v.state == versions.DROPPED}

    def _export_digest(self, table: str, version: int | None = None) -> tuple[str, int]:
        sink = _DigestSink()
        export_table(self.db, table, sink, version=version)  # type: ignore[arg-type]
        return sink.result()

    # -- teardown -------------------------------------------------------------------------
    def close(self) -> None:
        for reader in self.readers:
            reader.stop()
        for d in self.daemons:
            if d.alive():
                try:
                    d.terminate(timeout=30)
                except subprocess.TimeoutExpired:
                    d.kill9()
        self.db.dispose()


def _concat_digest(drops: Sequence[Drop]) -> tuple[str, int]:
    def cells() -> Iterator[Sequence[str]]:
        for d in drops:
            assert d.rows is not None
            yield from d.rows()

    return digest_rows(cells())


class _DigestSink(io.TextIOBase):
    """A text 'file' for `export_table` that checksums the rows instead of storing them.

    csv.writer writes each record with one write() call, so each call is parsed as one record.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._rows = -1  # the first record is the header

    def write(self, s: str) -> int:
        if self._rows >= 0:
            for row in csv.reader(io.StringIO(s, newline="")):
                self._hash.update("\x1f".join(row).encode("utf-8", "surrogatepass"))
                self._hash.update(b"\x1e")
        self._rows += 1
        return len(s)

    def result(self) -> tuple[str, int]:
        return self._hash.hexdigest(), max(0, self._rows)


# --------------------------------------------------------------------------- concurrent reader


class SnapshotReader:
    """Reads watched fullload tables in a loop; any state but one whole file's version is a violation.

    A table is watched once a file with a `version` tag is dropped for it into a fullload folder;
    its files carry their tag in the `version` column, so one GROUP BY shows whether the table
    holds exactly one complete file.
    """

    def __init__(self, engine: sa.Engine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self.expected: dict[str, dict[str, int]] = defaultdict(dict)
        self.violations: list[str] = []
        self.reads = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snapshot-reader", daemon=True)

    def expect(self, drop: Drop) -> None:
        if drop.load_type == "fullload" and drop.version and drop.table:
            with self._lock:
                self.expected[drop.table][drop.version] = drop.n_rows

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def reset(self) -> None:
        with self._lock:
            self.violations.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                tables = {t: dict(v) for t, v in self.expected.items()}
            for table, versions in tables.items():
                self._read(table, versions)
            self._stop.wait(self.interval)

    def _read(self, table: str, versions: dict[str, int]) -> None:
        try:
            with self.engine.connect() as conn:
                found = conn.execute(
                    sa.text(f'SELECT version, COUNT(*) FROM ref."{table}" GROUP BY version')
                ).all()
        except sa.exc.SQLAlchemyError:
            return  # no table yet, or the database is down in this scenario
        self.reads += 1
        problem = None
        if not found:
            problem = f"{table}: empty"
        elif len(found) > 1:
            problem = f"{table}: a mix of versions {sorted((v, n) for v, n in found)}"
        else:
            version, count = found[0]
            if versions.get(version) != count:
                problem = f"{table}: {count} rows of version {version} (file has {versions.get(version)})"
        if problem:
            with self._lock:
                self.violations.append(problem)


# ---------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def admin(url: str, database: str | None = None) -> Iterator[psycopg.Connection]:
    """A superuser session (autocommit) on the test's database, or on `database`."""
    target = make_url(url)
    if database is not None:
        target = target.set(database=database)
    with psycopg.connect(
        psycopg_conninfo(target.set(username="postgres", password=None)), autocommit=True
    ) as conn:
        yield conn


def sidecars(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((folder / "error").glob("*" + SIDECAR_SUFFIX)):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    return wait_for(predicate, timeout, interval=interval, what=what)


def sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
