"""Peers in the load benchmark: what a user could pick instead of us, on the same file and server.

Run from the repository root with the product's interpreter, after bench/setup_peers.sh::

    .venv/bin/python -m bench.peers [--sizes 100MB] [--rounds 3] [--peers adbc,duckdb,...]
        [--databases sqlite,postgresql] [--json-out FILE] [--md-out FILE]

Every case is a first load of the generated reference file (bench/generate.py) into a new table:
on SQLite into a new database file every round, on PostgreSQL into a new table of the throwaway
server (the one the test suite starts, ``fsync=off``) every round. Each case is one process timed
from start to exit, its peak RSS from GNU time, and the median of the rounds is reported. Rounds
are interleaved: round r runs every loader once on SQLite, then once on PostgreSQL, so a slow
minute of the machine is shared rather than landing on one loader. Ratios are pair by pair in
the same run: a loader's rows/s over the native loader's (``sqlite3 .import`` into a new
database, ``psql \\copy`` into a new table of text columns made beforehand).

After every load the table is checked in the catalog, outside the timing: its row count against
the generator's, and the column types the loader chose. The peers run with the interpreter and
binaries of bench/.venv-peers (none of them is a product dependency); ours runs with the
product's interpreter exactly as an operator runs ``python -m backend load``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.generate import COLUMNS, Generated, Spec, format_size, generate, parse_size
from bench.measure import machine_info, run_measured
from bench.product import has_pandas, product_python
from bench.runner import PgTarget, _pg_exec, _product_env, postgres_target, psql_copy_command

REPO = Path(__file__).resolve().parent.parent
PEERS_VENV = Path(os.environ.get("PEERS_VENV") or REPO / "bench" / ".venv-peers")
DATABASE = "bench_peers"
#: The product's own schemas on PostgreSQL: ``ref.<table>`` and its ``bkp`` copy.
OURS_SCHEMAS = ("ref", "bkp")


# ------------------------------------------------------------------------------------ one round
@dataclass
class Slot:
    """Where one round of one loader writes: the facts every command builder needs."""

    db: str  # sqlite | postgresql
    data: Generated
    table: str
    folder: Path  # the round's own folder (SQLite: holds the new database file)
    target: PgTarget | None = None

    @property
    def sqlite_file(self) -> Path:
        return self.folder / "peer.db"

    @property
    def pg_uri(self) -> str:
        """libpq URI of the benchmark database (what most peers take)."""
        return self.server.conninfo(DATABASE)

    @property
    def server(self) -> PgTarget:
        if self.target is None:
            raise RuntimeError(f"{self.db}: no PostgreSQL server for this round")
        return self.target


@dataclass(frozen=True)
class Location:
    """Where a loader left its table: a SQLite file or a PostgreSQL schema, and the table's name."""

    table: str
    sqlite_file: Path | None = None
    schema: str = "public"


@dataclass(frozen=True)
class Loader:
    """One loader of the comparison and how to drive it on each database."""

    name: str
    label: str
    group: str  # native | ours | peer
    databases: tuple[str, ...]
    command: Callable[[Slot], list[str]]
    locate: Callable[[Slot], Location] = field(default=lambda s: _default_location(s))
    prepare: Callable[[Slot], None] | None = None  # outside the timing
    env: Callable[[Slot], dict[str, str]] | None = None
    # Executables that must exist on that database, else the loader is skipped there.
    needs: Callable[[str], tuple[str, ...]] = field(default=lambda db: ())
    note: str = ""


def _default_location(slot: Slot) -> Location:
    if slot.db == "sqlite":
        return Location(slot.table, sqlite_file=slot.sqlite_file)
    return Location(slot.table)


def _peer_python() -> str:
    return str(PEERS_VENV / "bin" / "python")


def _peer_bin(name: str) -> str:
    return str(PEERS_VENV / "bin" / name)


def _sling_bin() -> str:
    found = sorted(PEERS_VENV.glob("lib/python3*/site-packages/sling_linux_amd64/bin/sling-linux-amd64"))
    return str(found[0]) if found else str(PEERS_VENV / "sling-not-installed")


def _text_table(slot: Slot) -> None:
    """The table that ``\\copy`` and pgloader need before they run (text columns, as the file's)."""
    columns = ", ".join(f"{name} text" for name, _ in COLUMNS)
    _pg_exec(slot.server, DATABASE, f'CREATE TABLE public."{slot.table}" ({columns})')


def _library(peer: str) -> Callable[[Slot], list[str]]:
    def command(slot: Slot) -> list[str]:
        where = ["--sqlite", str(slot.sqlite_file)] if slot.db == "sqlite" else ["--postgres", slot.pg_uri]
        script = [_peer_python(), "-m", "bench.peer_load", peer, str(slot.data.path)]
        return [*script, *where, "--table", slot.table]

    return command


def _ours(policy: str) -> Callable[[Slot], list[str]]:
    def command(slot: Slot) -> list[str]:
        url = f"sqlite:///{slot.folder / 'refdata.db'}" if slot.db == "sqlite" else slot.server.url(DATABASE)
        return [
            product_python(), "-m", "backend", "--env-file", os.devnull,
            "load", str(slot.data.path), "--table", slot.table, "--mode", "fullload", "--types", policy,
            "--database-url", url, "--json",
        ]  # fmt: skip

    return command


def _ours_location(slot: Slot) -> Location:
    # On SQLite the product attaches each schema as its own file next to the main one.
    if slot.db == "sqlite":
        return Location(slot.table, sqlite_file=slot.folder / "refdata.ref.db")
    return Location(slot.table, schema="ref")


def _native(slot: Slot) -> list[str]:
    if slot.db == "sqlite":
        return ["sqlite3", str(slot.sqlite_file), f".import --csv {slot.data.path} {slot.table}"]
    return psql_copy_command(slot.server, DATABASE, slot.data, f'public."{slot.table}"', truncate=False)


def _sqlite_utils(*flags: str) -> Callable[[Slot], list[str]]:
    def command(slot: Slot) -> list[str]:
        return [_peer_bin("sqlite-utils"), "insert", str(slot.sqlite_file), slot.table, str(slot.data.path),
                "--csv", *flags]  # fmt: skip

    return command


def _csvsql(slot: Slot) -> list[str]:
    # SQLAlchemy's default PostgreSQL driver (psycopg2) is what a csvsql user gets.
    url = f"sqlite:///{slot.sqlite_file}" if slot.db == "sqlite" else slot.pg_uri
    return [_peer_bin("csvsql"), "--db", url, "--insert", "--tables", slot.table, str(slot.data.path)]


def _ingestr(slot: Slot) -> list[str]:
    if slot.db == "sqlite":
        dest, table = f"sqlite:///{slot.sqlite_file}", f"main.{slot.table}"
    else:
        dest, table = f"{slot.pg_uri}?sslmode=disable", f"public.{slot.table}"
    return [
        _peer_bin("ingestr"), "ingest", "--source-uri", f"csv://{slot.data.path}",
        "--source-table", slot.table, "--dest-uri", dest, "--dest-table", table, "--yes", "--progress", "log",
    ]  # fmt: skip


def _sling(slot: Slot) -> list[str]:
    schema = "main" if slot.db == "sqlite" else "public"
    return [_sling_bin(), "run", "--src-stream", f"file://{slot.data.path}", "--tgt-conn", "PEER_TARGET",
            "--tgt-object", f"{schema}.{slot.table}"]  # fmt: skip


def _sling_env(slot: Slot) -> dict[str, str]:
    target = f"sqlite://{slot.sqlite_file}" if slot.db == "sqlite" else f"{slot.pg_uri}?sslmode=disable"
    return {
        "PEER_TARGET": target,
        "SLING_HOME_DIR": str(slot.folder / "sling-home"),
        # Without it sling looks for its own sqlite3 build, tries to download one, and on failure
        # inserts row by row through its driver; with it, it bulk-loads with the sqlite3 CLI.
        "SQLITE_PATH": shutil.which("sqlite3") or "sqlite3",
    }


def _pgloader(slot: Slot) -> list[str]:
    fields = ",".join(name for name, _ in COLUMNS)
    return [
        "pgloader", "--root-dir", str(slot.folder / "pgloader"), "--type", "csv", "--field", fields,
        "--with", "skip header = 1", "--with", "fields optionally enclosed by '\"'",
        "--with", "fields escaped by double-quote", "--with", "fields terminated by ','",
        str(slot.data.path), f"{slot.pg_uri}?tablename={slot.table}",
    ]  # fmt: skip


def _dlt_location(slot: Slot) -> Location:
    # The dataset is named like the table: a schema on PostgreSQL, a file <db>__<dataset>.db on SQLite.
    if slot.db == "sqlite":
        return Location(slot.table, sqlite_file=slot.folder / f"peer__{slot.table}.db")
    return Location(slot.table, schema=slot.table)


BOTH = ("sqlite", "postgresql")
LOADERS: tuple[Loader, ...] = (
    Loader("native", "native (`sqlite3 .import` / `psql \\copy`, text)", "native", BOTH, _native,
           prepare=lambda s: _text_table(s) if s.db == "postgresql" else None,
           needs=lambda db: ("sqlite3",) if db == "sqlite" else ("psql",)),
    Loader("ours-text", "**ours** `load`, first load, text", "ours", BOTH, _ours("text"),
           locate=_ours_location),
    Loader("ours-infer", "**ours** `load`, first load, infer", "ours", BOTH, _ours("infer"),
           locate=_ours_location),
    Loader("adbc", "ADBC `adbc_ingest` + pyarrow `open_csv`", "peer", BOTH, _library("adbc")),
    Loader("duckdb", "DuckDB `read_csv` -> attached db", "peer", BOTH, _library("duckdb")),
    Loader("pandas", "pandas `read_csv` + `to_sql`", "peer", BOTH, _library("pandas")),
    Loader("dlt", "dlt filesystem `read_csv`", "peer", BOTH, _library("dlt"), locate=_dlt_location),
    Loader("sqlite-utils", "sqlite-utils `insert --csv`", "peer", ("sqlite",), _sqlite_utils()),
    Loader("sqlite-utils-text", "sqlite-utils `insert --csv --no-detect-types`", "peer", ("sqlite",),
           _sqlite_utils("--no-detect-types")),
    Loader("csvkit", "csvkit `csvsql --insert`", "peer", BOTH, _csvsql),
    Loader("ingestr", "ingestr 0.15.9 `ingest`", "peer", BOTH, _ingestr),
    Loader("sling", "sling 1.4.11 `run`", "peer", BOTH, _sling, env=_sling_env),
    Loader("pgloader", "pgloader (CSV, into a text table)", "peer", ("postgresql",), _pgloader,
           prepare=_text_table, needs=lambda db: ("pgloader",)),
)  # fmt: skip
BY_NAME = {loader.name: loader for loader in LOADERS}


# -------------------------------------------------------------------------------------- results
@dataclass
class Result:
    """One loader on one database and file: its rounds and what it left in the catalog."""

    loader: Loader
    db: str
    size: str
    rows: int
    bytes: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)
    loaded_rows: list[int] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    @property
    def key(self) -> str:
        return f"{self.db}/{self.size}/{self.loader.name}"

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(r["seconds"] for r in self.runs) if self.runs else None

    @property
    def rows_per_second(self) -> float | None:
        m = self.median_seconds
        return self.rows / m if m else None

    @property
    def peak_rss_mb(self) -> float | None:
        return max(r["peak_rss_mb"] for r in self.runs) if self.runs else None

    @property
    def rows_ok(self) -> bool | None:
        return all(n == self.rows for n in self.loaded_rows) if self.loaded_rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "loader": self.loader.name,
            "label": self.loader.label,
            "group": self.loader.group,
            "db": self.db,
            "size": self.size,
            "rows": self.rows,
            "bytes": self.bytes,
            "rounds": self.runs,
            "median_seconds": None if self.median_seconds is None else round(self.median_seconds, 3),
            "rows_per_second": None if self.rows_per_second is None else round(self.rows_per_second),
            "peak_rss_mb": self.peak_rss_mb,
            "loaded_rows": self.loaded_rows,
            "rows_ok": self.rows_ok,
            "columns": [{"name": n, "type": t} for n, t in self.columns],
            "error": self.error,
            "skipped": self.skipped,
        }


# --------------------------------------------------------------------------------- the catalog
def inspect(slot: Slot, where: Location) -> tuple[int, list[tuple[str, str]]]:
    """Row count and (column, declared type) of the loaded table, in the table's column order.

    Raises:
        LookupError: the table is not where the loader should have left it.
    """
    if slot.db == "sqlite":
        if where.sqlite_file is None or not where.sqlite_file.exists():
            raise LookupError(f"no database file {where.sqlite_file}")
        with contextlib.closing(sqlite3.connect(where.sqlite_file)) as conn:
            info = conn.execute(f'PRAGMA table_info("{where.table}")').fetchall()
            if not info:
                raise LookupError(f"no table {where.table} in {where.sqlite_file.name}")
            count = conn.execute(f'SELECT count(*) FROM "{where.table}"').fetchone()[0]  # noqa: S608
        # An empty declared type is what SQLite keeps for a column created without one.
        return int(count), [(row[1], row[2] or "(none)") for row in info]
    import psycopg

    with psycopg.connect(slot.pg_uri) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (where.schema, where.table),
        ).fetchall()
        if not columns:
            raise LookupError(f"no table {where.schema}.{where.table}")
        row = conn.execute(f'SELECT count(*) FROM "{where.schema}"."{where.table}"').fetchone()  # noqa: S608
    return int(row[0]) if row else 0, [(str(n), str(t)) for n, t in columns]


def drop(slot: Slot, loader: Loader) -> None:
    """Remove what one round left, so the database does not grow round by round."""
    if slot.db == "sqlite":
        shutil.rmtree(slot.folder, ignore_errors=True)
        return
    where = loader.locate(slot)
    statements = [f'DROP TABLE IF EXISTS "{where.schema}"."{where.table}"']
    if loader.group == "ours":
        statements += [f'DROP TABLE IF EXISTS "{schema}"."{slot.table}"' for schema in OURS_SCHEMAS]
    if where.schema not in ("public", *OURS_SCHEMAS):
        statements.append(f'DROP SCHEMA IF EXISTS "{where.schema}" CASCADE')
    _pg_exec(slot.server, DATABASE, *statements)
    shutil.rmtree(slot.folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------- running
@dataclass
class Bench:
    workdir: Path
    rounds: int
    timeout_seconds: float
    case_budget_seconds: float
    env: dict[str, str]
    results: dict[str, Result] = field(default_factory=dict)

    def result(self, loader: Loader, db: str, data: Generated) -> Result:
        size = format_size(data.spec.size_bytes)
        key = f"{db}/{size}/{loader.name}"
        if key not in self.results:
            self.results[key] = Result(loader, db, size, data.rows, data.bytes)
        return self.results[key]

    def run_round(
        self, loader: Loader, db: str, data: Generated, target: PgTarget | None, round_no: int
    ) -> None:
        result = self.result(loader, db, data)
        if result.error or result.skipped:
            return
        # A slow loader keeps the rounds it has once it used its budget (one at least), so the
        # slowest peers cannot stretch the run without bound.
        if result.runs and sum(r["seconds"] for r in result.runs) >= self.case_budget_seconds:
            return
        missing = [tool for tool in loader.needs(db) if shutil.which(tool) is None]
        if loader.group == "peer" and not Path(_peer_python()).exists():
            missing.append(f"{PEERS_VENV} (run bench/setup_peers.sh)")
        if missing:
            result.skipped = "not installed: " + ", ".join(missing)
            _say(f"  skipped {result.key}: {result.skipped}")
            return
        # "sqlite_" names are reserved in SQLite, so every table gets a prefix of its own.
        table = "bench_" + loader.name.replace("-", "_") + f"_r{round_no}"
        slot = Slot(db, data, table, self.workdir / f"{db}-{loader.name}-r{round_no}", target)
        try:
            drop(slot, loader)  # a leftover of an interrupted run, and the round's folder
            slot.folder.mkdir(parents=True)
            if loader.prepare is not None:
                loader.prepare(slot)
            env = {**self.env, **(loader.env(slot) if loader.env else {})}
            load_before = os.getloadavg()[0]
            command = loader.command(slot)
            run = run_measured(
                command, env=env, cwd=slot.folder, check=False, timeout_seconds=self.timeout_seconds
            )
            if run.returncode != 0:
                tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-8:])
                if run.seconds >= self.timeout_seconds:
                    result.error = f"timed out after {self.timeout_seconds:.0f} s"
                else:
                    result.error = f"exit {run.returncode}: {tail}"
                _say(f"  FAILED {result.key}: {result.error}")
                return
            count, columns = inspect(slot, loader.locate(slot))
        except Exception as exc:  # noqa: BLE001 - a missing table, a database error: the others go on
            result.error = f"{type(exc).__name__}: {exc}"
            _say(f"  FAILED {result.key}: {result.error}")
            return
        finally:
            with contextlib.suppress(Exception):
                drop(slot, loader)
        result.columns = columns
        result.loaded_rows.append(count)
        result.runs.append(
            {
                "seconds": round(run.seconds, 4),
                "cpu_seconds": round(run.cpu_seconds, 3),
                "peak_rss_mb": round(run.peak_rss_mb, 1),
                "rows_in_table": count,
                "loadavg_1min_before": round(load_before, 2),
            }
        )
        flag = "" if count == data.rows else f"  ROWS {count:,} != {data.rows:,}"
        _say(
            f"  {result.key:<32} round {len(result.runs)}: {run.seconds:7.2f} s "
            f"{data.rows / run.seconds / 1000:8.1f}k rows/s {run.peak_rss_mb:7.1f} MB RSS{flag}"
        )


def _say(text: str) -> None:
    print(text, flush=True)


def _peer_env(workdir: Path) -> dict[str, str]:
    """The product's clean environment, plus what keeps every peer local and quiet."""
    env = _product_env(workdir)
    home = workdir / "home"  # tools that write caches or config under ~ write here instead
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "HOME": str(home),
            "DO_NOT_TRACK": "1",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "SLING_DISABLE_TELEMETRY": "true",
            "INGESTR_DISABLE_TELEMETRY": "true",
            "NO_COLOR": "1",
        }
    )
    return env


# --------------------------------------------------------------------------------------- report
def versions() -> dict[str, str]:
    """The version of every peer, as the run used it."""
    out: dict[str, str] = {}
    python = _peer_python()
    if Path(python).exists():
        listed = subprocess.run(
            [python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        wanted = {"duckdb", "pyarrow", "adbc-driver-sqlite", "adbc-driver-postgresql", "pandas", "sqlalchemy",
                  "dlt", "sqlite-utils", "csvkit", "ingestr", "sling-linux-amd64"}  # fmt: skip
        with contextlib.suppress(ValueError):
            for item in json.loads(listed or "[]"):
                if item["name"].lower() in wanted:
                    out[item["name"].lower()] = item["version"]
    pgloader = shutil.which("pgloader")
    if pgloader:
        text = subprocess.run([pgloader, "--version"], capture_output=True, text=True, check=False).stdout
        out["pgloader"] = text.split('"')[1] if '"' in text else text.strip()
    return out


def ratios(results: dict[str, Result]) -> dict[str, float]:
    """Each loader's rows/s over the native loader's on the same database and file."""
    out: dict[str, float] = {}
    for result in results.values():
        native = results.get(f"{result.db}/{result.size}/native")
        if native and native.rows_per_second and result.rows_per_second:
            out[result.key] = result.rows_per_second / native.rows_per_second
    return out


def _type_summary(columns: list[tuple[str, str]]) -> str:
    """``7 text, 2 double, ...`` for the file's columns; extra columns the loader added, counted."""
    names = {name for name, _ in COLUMNS}
    counts: dict[str, int] = {}
    for name, kind in columns:
        if name in names:
            kind = _short(kind.lower())
            counts[kind] = counts.get(kind, 0) + 1
    text = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    extra = [name for name, _ in columns if name not in names]
    if extra:
        text += f"; +{len(extra)} own ({', '.join(extra)})"
    order = [name for name, _ in columns if name in names]
    if order != [name for name, _ in COLUMNS]:
        text += "; column order changed"
    return text


def markdown(results: dict[str, Result]) -> str:
    rates = ratios(results)
    lines = [
        "| db | size | loader | median s | rows/s | vs native | peak RSS MB | rows match | column types"
        " | rounds |",
        "|---|---|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for result in sorted(results.values(), key=_order):
        if result.skipped or result.error:
            why = result.skipped or (result.error or "").splitlines()[0][:160].replace("|", "/")
            state = "skipped" if result.skipped else "failed"
            lines.append(
                f"| {result.db} | {result.size} | {result.loader.label} | - | - | - | - | - | "
                f"{state}: {why} | {len(result.runs)} |"
            )
            continue
        ok = "yes" if result.rows_ok else f"**no** ({', '.join(f'{n:,}' for n in result.loaded_rows)})"
        ratio = rates.get(result.key)
        lines.append(
            f"| {result.db} | {result.size} | {result.loader.label} | {result.median_seconds:.2f} | "
            f"{result.rows_per_second:,.0f} | {'-' if ratio is None else _ratio(ratio)} | "
            f"{result.peak_rss_mb:.0f} | {ok} | {_type_summary(result.columns)} | {len(result.runs)} |"
        )
    lines += ["", "Column types in the catalog after the load (the file's columns, in its order):", ""]
    names = [name for name, _ in COLUMNS]
    lines += ["| db | loader | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    seen: set[tuple[str, str]] = set()
    for result in sorted(results.values(), key=_order):
        if not result.columns or (result.db, result.loader.name) in seen:
            continue
        seen.add((result.db, result.loader.name))
        kinds = dict(result.columns)
        cells = " | ".join(_short(kinds.get(name, "-")) for name in names)
        lines.append(f"| {result.db} | {result.loader.label} | {cells} |")
    return "\n".join(lines) + "\n"


def _ratio(ratio: float) -> str:
    # The slowest peers are 100x and more below the native loader: two decimals would show 0.00x.
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def _short(kind: str) -> str:
    return {
        "character varying": "varchar",
        "timestamp without time zone": "timestamp",
        "timestamp with time zone": "timestamptz",
        "double precision": "double",
    }.get(kind, kind)


def _order(result: Result) -> tuple[int, int, int, float]:
    group = {"native": 0, "ours": 1, "peer": 2}[result.loader.group]
    rate = -(result.rows_per_second or 0.0)
    return ({"sqlite": 0, "postgresql": 1}.get(result.db, 2), result.bytes, group, rate)


# ------------------------------------------------------------------------------------------ main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100MB", help="file sizes, comma separated (default 100MB): 10MB,100MB")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per loader (default 3; median)")
    p.add_argument("--peers", default="all",
                   help=f"loaders to run, comma separated (default all): {', '.join(BY_NAME)}; "
                        "native and ours always run, the ratios need them")  # fmt: skip
    p.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql (comma separated)")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds one load may take (default 1200)")
    p.add_argument("--case-budget", type=float, default=150.0,
                   help="seconds after which a loader gets no more rounds (default 150)")  # fmt: skip
    p.add_argument("--json-out", type=Path, default=None, help="write every round and catalog fact as JSON")
    p.add_argument("--md-out", type=Path, default=None, help="also write the Markdown tables to this file")
    p.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if args.peers == "all":
        chosen = list(LOADERS)
    else:
        names = {n.strip() for n in args.peers.split(",") if n.strip()}
        unknown = names - set(BY_NAME)
        if unknown:
            raise SystemExit(f"unknown loaders: {', '.join(sorted(unknown))} (known: {', '.join(BY_NAME)})")
        chosen = [loader for loader in LOADERS if loader.name in names or loader.group in ("native", "ours")]
    root = Path(os.environ.get("BENCH_WORK_DIR") or Path(tempfile.gettempdir()) / "refdata-bench")
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="peers-", dir=root))
    # The PostgreSQL server runs as its own user; it never reads our files (every loader here
    # sends the rows from the client), but the work folder must be enterable for the peers' tools.
    workdir.chmod(0o755)
    bench = Bench(workdir, args.rounds, args.timeout, args.case_budget, _peer_env(workdir))
    started = time.monotonic()
    machine = machine_info(sys.executable)
    machine["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    machine["peers"] = versions()
    machine["product_python"] = product_python()
    machine["product_has_pandas"] = has_pandas(product_python())
    _say(f"machine: {machine}")
    files = [generate(Spec(size_bytes=size)) for size in sorted(sizes)]
    try:
        with postgres_target(None) if "postgresql" in databases else contextlib.nullcontext() as target:
            if target is not None:
                machine["postgresql_server"] = target.version()
                _pg_exec(target, "postgres", f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)',
                         f"CREATE DATABASE \"{DATABASE}\" TEMPLATE template0 ENCODING 'UTF8'")  # fmt: skip
            for data in files:
                _say(f"{format_size(data.spec.size_bytes)}: {data.rows:,} rows, {data.path}")
                for round_no in range(1, args.rounds + 1):
                    for db in databases:
                        if db == "postgresql" and target is None:
                            continue
                        for loader in chosen:
                            if db in loader.databases:
                                bench.run_round(loader, db, data, target, round_no)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    elapsed = time.monotonic() - started
    table = markdown(bench.results)
    header = _machine_line(machine, elapsed, args.rounds)
    _say("\n" + header + "\n\n" + table)
    if args.md_out:
        args.md_out.write_text(header + "\n\n" + table)
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "options": {k: str(v) for k, v in vars(args).items()},
                    "elapsed_seconds": round(elapsed, 1),
                    "results": [r.to_dict() for r in bench.results.values()],
                    "ratios_to_native": {k: round(v, 3) for k, v in ratios(bench.results).items()},
                },
                indent=2,
            )
        )
    return 1 if any(r.error for r in bench.results.values() if r.loader.group != "peer") else 0


def _machine_line(machine: dict[str, Any], elapsed: float, rounds: int) -> str:
    peers = ", ".join(f"{k} {v}" for k, v in sorted(machine.get("peers", {}).items()))
    return (
        f"Machine: {machine.get('cpu_model')}, {machine.get('nproc')} CPUs, "
        f"{machine.get('memory_gb')} GB RAM, Linux {machine.get('kernel')}; "
        f"load average {machine.get('loadavg_at_start')} at start, "
        f"{machine.get('loadavg_at_end')} at end. Python {machine.get('python')}, SQLite library "
        f"{machine.get('sqlite_library')} / CLI {machine.get('sqlite3_cli')}, PostgreSQL server "
        f"{machine.get('postgresql_server', 'not run')} ({machine.get('psql')}). Peers: {peers}. "
        f"Peak RSS via {machine.get('rss_method')}; medians of up to {rounds} interleaved rounds. "
        f"Whole run: {elapsed / 60:.1f} min."
    )


if __name__ == "__main__":
    raise SystemExit(main())
