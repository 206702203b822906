"""Side-by-side load benchmark: our `load` against the native bulk loaders and the Python baselines.

Run it as ``bench/run`` (or ``make bench``); ``bench/run --help`` lists the options. Every case
is a separate process timed from start to exit (interpreter start included) with its peak RSS;
each case runs several rounds and the median is reported. Rounds of the cases that are compared
with each other are interleaved (native, then ours, round by round), so a slow minute of the
machine hits both sides. What each case measures, and the database state it starts from:

SQLite (ours: ``python -m backend load`` into ``sqlite:///<work>/ours/refdata.db``)
  - ``ours fullload, new table``: first load into an empty database (one round, informational).
  - ``native fullload``: ``sqlite3 fresh.db ".import --csv FILE t"`` into a new database file,
    deleted before every round (text columns, created from the header).
  - ``ours fullload``: into the table that already holds the same file, so every round also
    copies the current rows into a new bkp version.
  - ``native append`` / ``ours append``: ``.import --csv --skip 1`` into the native table / our
    ``load --mode append``; in round r both tables hold r copies of the file beforehand.
PostgreSQL (a throwaway server started here, as the test suite does, or ``--database-url``)
  - ``native fullload``: one psql process: ``TRUNCATE t`` then ``\\copy t FROM FILE csv header``
    into a table of text columns (``typed`` variant: the columns carry the file's real types);
    the table held the file before, exactly like ours.
  - ``ours fullload``: into ``ref.<table>`` that holds the same file (bkp copy included).
  - ``native append`` / ``ours append``: ``\\copy`` / ``load --mode append`` into the table
    holding r copies in round r.
Baselines (fresh table every round): ``pandas`` = ``read_csv`` + ``to_sql``; ``upstream`` = the
upstream loader's approach (whole-file pandas read, 990-row parameterized INSERTs), see
bench/baselines.py. ``detect`` times detection alone.

Ratios are computed pair by pair from the medians of the same run: ours rows/s divided by the
native loader's rows/s on the same file and database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.generate import COLUMNS, DELIMITER_ALIASES, Generated, Spec, format_size, generate, parse_size
from bench.measure import CommandError, Run, machine_info, run_measured
from bench.product import has_pandas, product_python

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "out"
#: The targets of the issue "A columnar data path": ours rows/s divided by the native loader's
#: rows/s, keyed by (db, mode, our type policy, the native table's: text or typed). SQLite has
#: no typed native case: its infer target is against `.import`.
TARGETS: dict[tuple[str, str, str, str], float] = {
    ("sqlite", "fullload", "text", "text"): 1.0,
    ("sqlite", "append", "text", "text"): 1.0,
    ("sqlite", "fullload", "infer", "text"): 0.6,
    ("sqlite", "append", "infer", "text"): 0.6,
    ("postgresql", "fullload", "text", "text"): 0.8,
    ("postgresql", "append", "text", "text"): 0.8,
    ("postgresql", "fullload", "infer", "typed"): 0.7,
    ("postgresql", "append", "infer", "typed"): 0.7,
}
RSS_TARGET_MB = 200.0
DETECT_TARGET_SECONDS = 1.0


# ------------------------------------------------------------------------------------------ results
@dataclass
class Case:
    """One benchmark case and its measured rounds."""

    key: str
    db: str
    size: str
    group: str  # ours | native | pandas | upstream | detect
    mode: str  # fullload | append | first | "-"
    policy: str  # text | infer | typed | "-"
    label: str
    rows: int
    bytes: int
    runs: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(r["seconds"] for r in self.runs) if self.runs else None

    @property
    def rows_per_second(self) -> float | None:
        m = self.median_seconds
        return self.rows / m if m else None

    @property
    def mb_per_second(self) -> float | None:
        m = self.median_seconds
        return self.bytes / 1e6 / m if m else None

    @property
    def peak_rss_mb(self) -> float | None:
        return max(r["peak_rss_mb"] for r in self.runs) if self.runs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "db": self.db,
            "size": self.size,
            "group": self.group,
            "mode": self.mode,
            "policy": self.policy,
            "label": self.label,
            "rows": self.rows,
            "bytes": self.bytes,
            "rounds": self.runs,
            "median_seconds": _round(self.median_seconds, 3),
            "rows_per_second": _round(self.rows_per_second, 0),
            "mb_per_second": _round(self.mb_per_second, 2),
            "peak_rss_mb": _round(self.peak_rss_mb, 1),
            "error": self.error,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Context:
    """What every case needs: the interpreter, the work folder, the options and the results."""

    python: str
    workdir: Path
    rounds: int
    big_rounds: int
    case_budget_seconds: float
    modes: tuple[str, ...]
    policies: tuple[str, ...]
    env: dict[str, str]
    cases: dict[str, Case] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rounds_for(self, data: Generated) -> int:
        return self.big_rounds if data.bytes >= 500 * 10**6 else self.rounds

    def case(self, db: str, data: Generated, group: str, mode: str, policy: str, label: str) -> Case:
        size = format_size(data.spec.size_bytes)
        key = f"{db}/{size}/{group}/{mode}/{policy}"
        if key not in self.cases:
            self.cases[key] = Case(key, db, size, group, mode, policy, label, data.rows, data.bytes)
        return self.cases[key]

    def measure(
        self,
        case: Case,
        command: list[str],
        *,
        check_rows: bool = False,
        env: dict[str, str] | None = None,
    ) -> Run | None:
        """Run one round of `case`; a failure is recorded on the case (later rounds are skipped).

        A case that has already used its time budget is not run again (it keeps at least one
        round), so a slow product or baseline cannot stretch the whole run without bound.
        """
        if case.error is not None:
            return None
        if case.runs and sum(r["seconds"] for r in case.runs) >= self.case_budget_seconds:
            return None
        try:
            run = run_measured(command, env=env or self.env, cwd=self.workdir)
            extra: dict[str, float] = {}
            if check_rows or case.group == "detect":
                summary = _last_json(run.stdout)
                if check_rows:
                    loaded = summary.get("rows_loaded", summary.get("rows"))
                    if loaded != case.rows:
                        raise CommandError(f"expected {case.rows} rows, the command reported {loaded}")
                if "seconds" in summary:
                    extra["inner_seconds"] = float(summary["seconds"])
        except CommandError as exc:
            case.error = str(exc)
            _say(f"  FAILED {case.key}: {exc}")
            return None
        case.runs.append(
            {
                "seconds": round(run.seconds, 4),
                "cpu_seconds": round(run.cpu_seconds, 3),
                "peak_rss_mb": round(run.peak_rss_mb, 1),
                **extra,
            }
        )
        rate = case.rows / run.seconds if run.seconds else 0.0
        _say(
            f"  {case.key:<40} round {len(case.runs)}: {run.seconds:7.2f} s {rate / 1000:8.1f}k rows/s"
            f" {run.peak_rss_mb:7.1f} MB RSS"
        )
        return run


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    raise CommandError(f"no JSON summary in the output: {stdout.strip()[-300:]!r}")


def _say(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------------------------------- ours
def ours_command(ctx: Context, data: Generated, url: str, table: str, mode: str, policy: str) -> list[str]:
    """``python -m backend load`` exactly as an operator runs it (no .env, explicit URL)."""
    return [
        product_python(), "-m", "backend", "--env-file", os.devnull,
        "load", str(data.path), "--table", table, "--mode", mode, "--types", policy,
        "--database-url", url, "--json",
    ]  # fmt: skip


def ours_first_loads(ctx: Context, db: str, data: Generated, url: str) -> None:
    for policy in ctx.policies:
        case = ctx.case(db, data, "ours", "first", policy, f"ours first load (new table), {policy}")
        ctx.measure(
            case, ours_command(ctx, data, url, f"bench_{policy}", "fullload", policy), check_rows=True
        )


def ours_round(ctx: Context, db: str, data: Generated, url: str, mode: str) -> None:
    for policy in ctx.policies:
        case = ctx.case(db, data, "ours", mode, policy, f"ours {mode}, {policy}")
        ctx.measure(case, ours_command(ctx, data, url, f"bench_{policy}", mode, policy), check_rows=True)


# ----------------------------------------------------------------------------------------- sqlite
def sqlite_import_command(data: Generated, database: Path, *, append: bool) -> list[str]:
    """sqlite3 CLI ``.import`` of the file into table t (header skipped when t exists)."""
    skip = " --skip 1" if append else ""
    if data.spec.delimiter == ",":
        return ["sqlite3", str(database), f".import --csv{skip} {data.path} t"]
    separator = "\\t" if data.spec.delimiter == "\t" else data.spec.delimiter
    return ["sqlite3", "-cmd", ".mode csv", "-cmd", f'.separator "{separator}"', str(database),
            f".import{skip} {data.path} t"]  # fmt: skip


def bench_sqlite(ctx: Context, data: Generated) -> None:
    base = ctx.workdir / f"sqlite-{format_size(data.spec.size_bytes)}"
    (base / "ours").mkdir(parents=True, exist_ok=True)
    (base / "native").mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{base / 'ours' / 'refdata.db'}"
    native_db = base / "native" / "native.db"
    have_cli = shutil.which("sqlite3") is not None
    if not have_cli:
        ctx.notes.append("sqlite3 CLI not installed: native SQLite cases skipped (apt-get install sqlite3)")
    rounds = ctx.rounds_for(data)
    ours_first_loads(ctx, "sqlite", data, url)
    if "fullload" in ctx.modes:
        for _ in range(rounds):
            if have_cli:
                native_db.unlink(missing_ok=True)
                native = ctx.case("sqlite", data, "native", "fullload", "text", "sqlite3 .import (new db)")
                ctx.measure(native, sqlite_import_command(data, native_db, append=False))
            ours_round(ctx, "sqlite", data, url, "fullload")
    if "append" in ctx.modes:
        if have_cli and not native_db.exists():
            run_measured(sqlite_import_command(data, native_db, append=False), env=ctx.env)
        for _ in range(rounds):
            if have_cli:
                native = ctx.case("sqlite", data, "native", "append", "text", "sqlite3 .import (append)")
                ctx.measure(native, sqlite_import_command(data, native_db, append=True))
            ours_round(ctx, "sqlite", data, url, "append")
    if have_cli and native_db.exists():
        _check_sqlite_count(ctx, native_db, data, rounds + 1 if "append" in ctx.modes else 1)
    shutil.rmtree(base, ignore_errors=True)


def sqlite_schema_file(url: str, schema: str) -> Path:
    """The attached file holding `schema` of a product SQLite URL (``refdata.ref.db`` next to it)."""
    from sqlalchemy.engine import make_url

    database = Path(make_url(url).database or "")
    return database.with_suffix(f".{schema}.db")


def _check_sqlite_count(ctx: Context, database: Path, data: Generated, copies: int) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(database)) as conn:
        count = conn.execute("SELECT count(*) FROM t").fetchone()[0]
    if count != data.rows * copies:
        ctx.notes.append(f"sqlite3 .import loaded {count} rows, expected {data.rows * copies}")


# ------------------------------------------------------------------------------------- postgresql
@dataclass
class PgTarget:
    """A PostgreSQL server to benchmark on; `server` is None for one given by --database-url."""

    admin_url: Any  # sqlalchemy URL
    server: Any = None
    external_database: str | None = None

    def url(self, database: str) -> str:
        return str(self.admin_url.set(database=database).render_as_string(hide_password=False))

    def conninfo(self, database: str) -> str:
        url = self.admin_url.set(database=database, drivername="postgresql")
        return str(url.render_as_string(hide_password=False))

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.conninfo(self.external_database or "postgres")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"


@contextlib.contextmanager
def postgres_target(external_url: str | None) -> Iterator[PgTarget | None]:
    """The throwaway server (tests/conftest.py's PgServer), or the external one; None if neither."""
    from sqlalchemy.engine import make_url

    if external_url:
        url = make_url(external_url).set(drivername="postgresql+psycopg")
        yield PgTarget(admin_url=url, external_database=url.database)
        return
    from tests.conftest import PgServer, PgUnavailableError

    try:
        server = PgServer.create()
    except PgUnavailableError as exc:
        _say(f"PostgreSQL unavailable, its cases are skipped: {exc}")
        yield None
        return
    try:
        yield PgTarget(admin_url=server.admin_url, server=server)
    finally:
        server.destroy()


def _pg_exec(target: PgTarget, database: str, *statements: str, autocommit: bool = True) -> None:
    import psycopg

    with psycopg.connect(target.conninfo(database), autocommit=autocommit) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def psql_copy_command(
    target: PgTarget, database: str, data: Generated, table: str, *, truncate: bool
) -> list[str]:
    """One psql process: optionally TRUNCATE, then client-side ``\\copy`` of the file."""
    delimiter = "E'\\t'" if data.spec.delimiter == "\t" else f"'{data.spec.delimiter}'"
    encoding = "WIN1252" if data.spec.encoding == "cp1252" else "UTF8"
    copy = (
        f"\\copy {table} FROM '{data.path}' WITH (FORMAT csv, HEADER true, DELIMITER {delimiter}, "
        f"ENCODING '{encoding}')"
    )
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target.conninfo(database)]
    if truncate:
        command += ["-c", f"TRUNCATE {table}"]
    return [*command, "-c", copy]


def bench_postgres(ctx: Context, data: Generated, target: PgTarget) -> None:
    size = format_size(data.spec.size_bytes)
    if target.external_database:
        database = target.external_database
    else:
        database = f"bench_{size.lower()}"
        _pg_exec(target, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _pg_exec(target, "postgres", f"CREATE DATABASE \"{database}\" TEMPLATE template0 ENCODING 'UTF8'")
    url = target.url(database)
    have_psql = shutil.which("psql") is not None
    if not have_psql:
        ctx.notes.append(
            "psql not installed: native PostgreSQL cases skipped (apt-get install postgresql-client)"
        )
    natives = {
        "text": ("bench_native_text", ", ".join(f"{name} text" for name, _ in COLUMNS)),
        "typed": ("bench_native_typed", ", ".join(f"{name} {kind}" for name, kind in COLUMNS)),
    }
    for table, columns in natives.values():
        _pg_exec(target, database, f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} ({columns})")
    rounds = ctx.rounds_for(data)
    try:
        ours_first_loads(ctx, "postgresql", data, url)
        if have_psql:
            for kind, (table, _) in natives.items():
                case = ctx.case(
                    "postgresql", data, "native", "first", kind, f"psql \\copy, {kind} (new table)"
                )
                ctx.measure(case, psql_copy_command(target, database, data, table, truncate=False))
        if "fullload" in ctx.modes:
            for _ in range(rounds):
                if have_psql:
                    for kind, (table, _) in natives.items():
                        case = ctx.case(
                            "postgresql", data, "native", "fullload", kind, f"psql TRUNCATE + \\copy, {kind}"
                        )
                        ctx.measure(case, psql_copy_command(target, database, data, table, truncate=True))
                ours_round(ctx, "postgresql", data, url, "fullload")
        if "append" in ctx.modes:
            for _ in range(rounds):
                if have_psql:
                    for kind, (table, _) in natives.items():
                        case = ctx.case(
                            "postgresql", data, "native", "append", kind, f"psql \\copy append, {kind}"
                        )
                        ctx.measure(case, psql_copy_command(target, database, data, table, truncate=False))
                ours_round(ctx, "postgresql", data, url, "append")
    finally:
        if target.external_database:
            _drop_bench_tables(url, ctx.policies)
        else:
            _pg_exec(target, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _drop_bench_tables(url: str, policies: tuple[str, ...]) -> None:
    """On a server we do not own, remove only the tables this benchmark created."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for schema in ("ref", "bkp"):
                for policy in policies:
                    table = sa.Table(f"bench_{policy}", sa.MetaData(), schema=schema)
                    conn.execute(sa.schema.DropTable(table, if_exists=True))
            for name in ("bench_native_text", "bench_native_typed", "bench_pandas", "bench_upstream"):
                conn.execute(sa.schema.DropTable(sa.Table(name, sa.MetaData()), if_exists=True))
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------ other targets
def bench_generic(ctx: Context, db: str, data: Generated, url: str) -> None:
    """A database without a native loader we can drive here (SQL Server): ours only."""
    ours_first_loads(ctx, db, data, url)
    for mode in ctx.modes:
        for _ in range(ctx.rounds_for(data)):
            ours_round(ctx, db, data, url, mode)
    ctx.notes.append(
        f"{db}: no native loader run here; compare with BULK INSERT ... WITH (FORMAT = 'CSV') or bcp on "
        "the server itself (see bench/RESULTS.md)"
    )


def baseline_command(ctx: Context, approach: str, data: Generated, url: str, table: str) -> list[str]:
    return [
        ctx.python, "-m", "bench.baselines", approach, str(data.path), "--database-url", url,
        "--table", table, "--delimiter", data.spec.delimiter, "--encoding", data.spec.encoding,
    ]  # fmt: skip


def bench_baselines(
    ctx: Context, db: str, data: Generated, approaches: list[str], url_for: Callable[[], str]
) -> None:
    for approach in approaches:
        label = "pandas read_csv + to_sql" if approach == "pandas" else "upstream (pandas + 990-row INSERTs)"
        case = ctx.case(db, data, approach, "fullload", "-", label)
        for _ in range(ctx.rounds_for(data)):
            ctx.measure(
                case, baseline_command(ctx, approach, data, url_for(), f"bench_{approach}"), check_rows=True
            )


def bench_detect(ctx: Context, data: Generated) -> None:
    case = ctx.case("-", data, "detect", "-", "-", "detect (whole process; in-process in parentheses)")
    for _ in range(ctx.rounds_for(data)):
        ctx.measure(case, [ctx.python, "-m", "bench.detect_speed", str(data.path)])


# ------------------------------------------------------------------------------------------ report
@dataclass(frozen=True)
class Ratio:
    db: str
    size: str
    mode: str
    policy: str
    ours_rows_per_second: float
    reference: str
    reference_rows_per_second: float
    ratio: float
    target: float | None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target


def compute_ratios(cases: dict[str, Case]) -> list[Ratio]:
    """Ours against the native loader (and the typed native table on PostgreSQL), pair by pair."""
    out: list[Ratio] = []
    for case in cases.values():
        if case.group != "ours" or case.mode not in ("fullload", "append") or not case.rows_per_second:
            continue
        for native_policy in ("text", "typed"):
            native = cases.get(f"{case.db}/{case.size}/native/{case.mode}/{native_policy}")
            if native is None or not native.rows_per_second:
                continue
            target = TARGETS.get((case.db, case.mode, case.policy, native_policy))
            out.append(
                Ratio(
                    case.db,
                    case.size,
                    case.mode,
                    case.policy,
                    case.rows_per_second,
                    native.label,
                    native.rows_per_second,
                    case.rows_per_second / native.rows_per_second,
                    target,
                )
            )
    return out


def compute_speedups(cases: dict[str, Case]) -> list[dict[str, Any]]:
    """Ours (fullload, per policy) over the pandas and upstream baselines on the same db and file."""
    out = []
    for case in cases.values():
        if case.group not in ("pandas", "upstream") or not case.rows_per_second:
            continue
        for policy in ("text", "infer"):
            ours = cases.get(f"{case.db}/{case.size}/ours/fullload/{policy}")
            if ours is None or not ours.rows_per_second:
                continue
            out.append(
                {
                    "db": case.db,
                    "size": case.size,
                    "baseline": case.group,
                    "policy": policy,
                    "baseline_rows_per_second": round(case.rows_per_second),
                    "ours_rows_per_second": round(ours.rows_per_second),
                    "speedup": round(ours.rows_per_second / case.rows_per_second, 2),
                    "baseline_peak_rss_mb": case.peak_rss_mb,
                    "ours_peak_rss_mb": ours.peak_rss_mb,
                }
            )
    return out


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def markdown_tables(
    cases: dict[str, Case], ratios: list[Ratio], speedups: list[dict[str, Any]], daemon: dict[str, Any]
) -> str:
    lines = [
        "| db | size | case | rows | median s | rows/s | MB/s | peak RSS MB | rounds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases.values():
        seconds = _fmt(case.median_seconds, "{:.2f}")
        if case.group == "detect" and case.runs and "inner_seconds" in case.runs[0]:
            inner = statistics.median(r["inner_seconds"] for r in case.runs)
            seconds += f" ({inner:.3f})"
        if case.error:
            seconds = "failed"
        rate = None if case.group == "detect" else case.rows_per_second
        lines.append(
            f"| {case.db} | {case.size} | {case.label} | {case.rows:,} | {seconds} | "
            f"{_fmt(rate, '{:,.0f}')} | {_fmt(case.mb_per_second, '{:.1f}')} | "
            f"{_fmt(case.peak_rss_mb, '{:.0f}')} | {len(case.runs)} |"
        )
    lines += [
        "",
        "| db | size | ours | ours rows/s | vs | native rows/s | ratio | target | met |",
        "|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in ratios:
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.db} | {r.size} | {r.mode}, {r.policy} | {r.ours_rows_per_second:,.0f} | {r.reference} | "
            f"{r.reference_rows_per_second:,.0f} | {r.ratio:.2f}x | {_fmt(r.target, '{:.2f}x')} | {met} |"
        )
    if speedups:
        lines += [
            "",
            "| db | size | baseline | baseline rows/s | RSS MB | ours fullload rows/s | RSS MB | speed-up |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for s in speedups:
            lines.append(
                f"| {s['db']} | {s['size']} | {s['baseline']} | {s['baseline_rows_per_second']:,} | "
                f"{_fmt(s['baseline_peak_rss_mb'], '{:.0f}')} | "
                f"{s['ours_rows_per_second']:,} ({s['policy']}) | "
                f"{_fmt(s['ours_peak_rss_mb'], '{:.0f}')} | {s['speedup']:.1f}x |"
            )
    if daemon:
        lines += ["", "| db | daemon check | result | target | met |", "|---|---|---|---|---|"]
        for db, result in daemon.items():
            if result.get("error"):
                lines.append(f"| {db} | (run) | failed: {result['error']} | - | **no** |")
            for check in result.get("checks", []):
                met = "-" if check.get("met") is None else ("yes" if check["met"] else "**no**")
                lines.append(f"| {db} | {check['name']} | {check['result']} | {check['target']} | {met} |")
    return "\n".join(lines) + "\n"


def machine_markdown(machine: dict[str, Any], elapsed_seconds: float) -> str:
    pg = machine.get("postgresql_server", "not run")
    return (
        f"Machine: {machine.get('cpu_model')}, {machine.get('nproc')} CPUs, "
        f"{machine.get('memory_gb')} GB RAM, "
        f"Linux {machine.get('kernel')}; load average {machine.get('loadavg_at_start')} at start, "
        f"{machine.get('loadavg_at_end')} at end. Python {machine.get('python')}, SQLite library "
        f"{machine.get('sqlite_library')} / CLI {machine.get('sqlite3_cli')}, PostgreSQL server {pg} "
        f"({machine.get('psql')}), pandas {machine.get('pandas')}, SQLAlchemy {machine.get('sqlalchemy')}, "
        f"psycopg {machine.get('psycopg')}. Peak RSS via {machine.get('rss_method')}. "
        f"Whole run: {elapsed_seconds / 60:.1f} min.\n"
    )


def rss_checks(cases: dict[str, Case]) -> list[str]:
    """Peak RSS of ours per database and size (the 200 MB target and flatness)."""
    lines = []
    by_db: dict[str, dict[str, tuple[int, float]]] = {}
    for case in cases.values():
        if case.group == "ours" and case.peak_rss_mb:
            sizes = by_db.setdefault(case.db, {})
            _, previous = sizes.get(case.size, (case.bytes, 0.0))
            sizes[case.size] = (case.bytes, max(previous, case.peak_rss_mb))
    for db, sizes in by_db.items():
        ordered = sorted(sizes.items(), key=lambda item: item[1][0])
        text = ", ".join(f"{size}: {rss:.0f} MB" for size, (_, rss) in ordered)
        lines.append(f"{db}: peak RSS of ours by file size: {text} (target <= {RSS_TARGET_MB:.0f} MB, flat)")
    return lines


# -------------------------------------------------------------------------------------------- main
def _product_env(workdir: Path) -> dict[str, str]:
    """The environment for every subprocess: no product settings inherited from the caller."""
    from backend.config import Settings

    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["DATA_DIR"] = str(workdir / "data")
    env["LOG_LEVEL"] = "WARNING"
    return env


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Load benchmark: ours vs native bulk loaders vs pandas/upstream (see bench/RESULTS.md).",
    )
    p.add_argument("--sizes", default="10MB,100MB", help="file sizes, comma separated (default 10MB,100MB)")
    p.add_argument("--full", action="store_true", help="also the 1 GB file (minutes, ~1 GB disk per copy)")
    p.add_argument(
        "--rounds", type=int, default=3, help="rounds per case (default 3; the median is reported)"
    )
    p.add_argument(
        "--case-budget",
        type=float,
        default=60.0,
        help="seconds after which a case gets no further rounds (default 60; it keeps at least one)",
    )
    p.add_argument(
        "--big-rounds", type=int, default=1, help="rounds per case for files >= 500 MB (default 1)"
    )
    p.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql (comma separated)")
    p.add_argument(
        "--database-url",
        default=None,
        help="also (mssql+pyodbc://...) or instead of the throwaway server (postgresql://...) bench this URL",
    )
    p.add_argument("--modes", default="fullload,append", help="fullload, append")
    p.add_argument("--policies", default="text,infer", help="type policies: text, infer")
    p.add_argument("--baselines", default="pandas,upstream", help="pandas, upstream, or none")
    p.add_argument("--upstream-sizes", default="10MB", help="sizes the slow upstream approach runs on")
    p.add_argument("--pandas-max-size", default="100MB", help="largest file the pandas baseline loads")
    p.add_argument("--no-detect", action="store_true", help="skip the detection timing")
    p.add_argument(
        "--daemon-databases",
        default="sqlite",
        help="databases the daemon checks run on: sqlite, postgresql, or none (default sqlite)",
    )
    p.add_argument("--delimiter", default=",", help="field delimiter of the generated files: , ; | or tab")
    p.add_argument("--encoding", default="utf-8", choices=["utf-8", "utf-8-sig", "cp1252"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default bench/out)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (databases) afterwards")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.full and 10**9 not in sizes:
        sizes.append(10**9)
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    delimiter = DELIMITER_ALIASES.get(args.delimiter, args.delimiter)
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip() and b.strip() != "none"]
    upstream_sizes = {parse_size(s) for s in args.upstream_sizes.split(",") if s.strip()}
    pandas_max = parse_size(args.pandas_max_size)
    external_pg = None
    extra_targets: list[tuple[str, str]] = []
    if args.database_url:
        from sqlalchemy.engine import make_url

        backend = make_url(args.database_url).get_backend_name()
        if backend in ("postgresql", "postgres"):
            external_pg = args.database_url
            if "postgresql" not in databases:
                databases.append("postgresql")
        else:
            extra_targets.append((backend, args.database_url))

    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=_work_root()))
    ctx = Context(
        python=sys.executable,
        workdir=workdir,
        rounds=args.rounds,
        big_rounds=args.big_rounds,
        case_budget_seconds=args.case_budget,
        modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
        policies=tuple(p.strip() for p in args.policies.split(",") if p.strip()),
        env=_product_env(workdir),
    )
    started = time.monotonic()
    machine = machine_info(ctx.python)
    # Other work on the machine skews every number; the load average says how quiet it was.
    machine["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    machine["product_python"] = product_python()
    machine["product_has_pandas"] = has_pandas(product_python())
    _say(f"machine: {machine}")
    _say(f"work folder: {workdir}")
    files: list[Generated] = []
    for size in sorted(sizes):
        _say(f"generating {format_size(size)} ...")
        files.append(
            generate(Spec(size_bytes=size, delimiter=delimiter, encoding=args.encoding, seed=args.seed))
        )
    daemon_dbs = [d.strip() for d in args.daemon_databases.split(",") if d.strip() not in ("", "none")]
    daemon_result: dict[str, Any] = {}
    try:
        if not args.no_detect:
            for data in files:
                bench_detect(ctx, data)
        if "sqlite" in databases:
            for data in files:
                _say(f"sqlite, {format_size(data.spec.size_bytes)} ({data.rows:,} rows)")
                bench_sqlite(ctx, data)
                sqlite_base = workdir / "baselines"
                sqlite_base.mkdir(exist_ok=True)

                def fresh_sqlite(base: Path = sqlite_base) -> str:
                    for leftover in base.glob("baseline.db*"):
                        leftover.unlink()
                    return f"sqlite:///{base / 'baseline.db'}"

                chosen = _baselines_for(baselines, data, upstream_sizes, pandas_max)
                bench_baselines(ctx, "sqlite", data, chosen, fresh_sqlite)
        if "postgresql" in databases or "postgresql" in daemon_dbs:
            with postgres_target(external_pg) as target:
                if target is not None:
                    machine["postgresql_server"] = target.version()
                    for data in files if "postgresql" in databases else []:
                        _say(f"postgresql, {format_size(data.spec.size_bytes)} ({data.rows:,} rows)")
                        bench_postgres(ctx, data, target)
                        database = target.external_database or "bench_baselines"
                        if not target.external_database:
                            _pg_exec(target, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
                                     f'CREATE DATABASE "{database}" TEMPLATE template0')  # fmt: skip
                        chosen = _baselines_for(baselines, data, upstream_sizes, pandas_max)
                        bench_baselines(
                            ctx,
                            "postgresql",
                            data,
                            chosen,
                            lambda database=database, target=target: target.url(database),
                        )
                        if target.external_database:
                            _drop_bench_tables(target.url(database), ctx.policies)
                if target is not None and "postgresql" in daemon_dbs and not target.external_database:
                    from bench.daemon import bench_daemon

                    _pg_exec(target, "postgres", 'DROP DATABASE IF EXISTS "bench_daemon" WITH (FORCE)',
                             'CREATE DATABASE "bench_daemon" TEMPLATE template0')  # fmt: skip
                    daemon_result["postgresql"] = bench_daemon(
                        product_python(), ctx.env, workdir / "daemon-postgresql", target.url("bench_daemon")
                    )
        for name, url in extra_targets:
            for data in files:
                _say(f"{name}, {format_size(data.spec.size_bytes)} ({data.rows:,} rows)")
                bench_generic(ctx, name, data, url)
                chosen = [
                    b for b in _baselines_for(baselines, data, upstream_sizes, pandas_max) if b == "pandas"
                ]
                bench_baselines(ctx, name, data, chosen, lambda url=url: url)
                _drop_bench_tables(url, ctx.policies)
        if "sqlite" in daemon_dbs:
            from bench.daemon import bench_daemon

            daemon_result["sqlite"] = bench_daemon(product_python(), ctx.env, workdir / "daemon-sqlite")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    ratios = compute_ratios(ctx.cases)
    speedups = compute_speedups(ctx.cases)
    tables = markdown_tables(ctx.cases, ratios, speedups, daemon_result)
    summary_lines = rss_checks(ctx.cases) + ctx.notes
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "options": {k: str(v) for k, v in vars(args).items()},
                "elapsed_seconds": round(time.monotonic() - started, 1),  # before the report
                "cases": [c.to_dict() for c in ctx.cases.values()],
                "ratios": [{**r.__dict__, "met": r.met} for r in ratios],
                "speedups": speedups,
                "daemon": daemon_result,
                "notes": summary_lines,
            },
            indent=2,
        )
    )
    elapsed = time.monotonic() - started
    (args.out / "results.md").write_text(
        machine_markdown(machine, elapsed)
        + "\n"
        + tables
        + "\n"
        + "\n".join(f"- {line}" for line in summary_lines)
        + "\n"
    )
    _say("")
    _say(tables)
    for line in summary_lines:
        _say(f"- {line}")
    _say(f"\nwrote {args.out / 'results.json'} and results.md in {time.monotonic() - started:.0f} s")
    failed = [c.key for c in ctx.cases.values() if c.error]
    return 1 if failed else 0


def _baselines_for(
    baselines: list[str], data: Generated, upstream_sizes: set[int], pandas_max: int
) -> list[str]:
    chosen = []
    if "pandas" in baselines and data.spec.size_bytes <= pandas_max:
        chosen.append("pandas")
    if "upstream" in baselines and data.spec.size_bytes in upstream_sizes:
        chosen.append("upstream")
    return chosen


def _work_root() -> Path:
    root = Path(os.environ.get("BENCH_WORK_DIR") or Path(tempfile.gettempdir()) / "refdata-bench")
    root.mkdir(parents=True, exist_ok=True)
    return root


if __name__ == "__main__":
    raise SystemExit(main())
