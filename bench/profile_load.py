"""Profile one end-to-end ``python -m backend load`` with py-spy and print where the time goes.

The load runs exactly as in the benchmark (same generated file, same database state: for a
fullload the table already holds the file, so the bkp copy happens; for an append it holds one
copy). py-spy samples the whole process, idle time included (``--idle``: waiting for the database
server counts, it is part of the wall clock). By default only Python frames are sampled, at
100 Hz, which keeps the load within a few percent of its unprofiled time; then the C csv loop
shows as the ``for values in reader`` line of backend/reader.py ("parse") and the code feeding
it lines as "read/decode". ``--native`` adds C frames (the csv parser, the UTF-8 decoder) for
a finer split, at the price of slowing the run down by about half.

Every sample is assigned to one stage by its innermost recognised frame:

=====================  =======================================================================
startup/imports        interpreter start, module imports (also lazy ones during the load)
setup/tracking         settings, engine, init_db, tracking rows, table plan
detect                 backend.detection (encoding, dialect, header, sample types)
read/decode            file reads, SHA-256 of the bytes, TextIOWrapper decoding (csv input side)
parse                  the C csv reader and the run generator of load/csv_python.py, or
                       pyarrow's streaming reader (load/arrow_csv.py)
convert                the batch loop of load/stage.py stream_records (ragged policy) or
                       load/arrow_stage.py stream_arrow
check                  load/convert.py: typed values checked exactly (regex, RE2 on Arrow)
infer types            TypeTracker.observe over every row (``--types infer`` only)
profile stats          backend/profile.py: per-column statistics gathered while staging
column stats           longest value and empty cells per column, counted on
                       the way to the database (load/measure.py)
send                   rows into the staging table (executemany / COPY), incl. waiting
validate               quality checks and profile of the staged rows
publish                load/publish.py: catalogue and tracking rows, the commit
version swap           load/versions.py / the adapter's swap_versions: the new version table
                       created and swapped in as metadata (attempt._open_target, publish)
other                  anything else (garbage collector, unresolved frames)
=====================  =======================================================================

Usage::

    python -m bench.profile_load [--size 100MB | --file F] [--database sqlite|postgresql]
        [--mode fullload|append] [--types text|infer] [--rate 100] [--native]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.generate import Spec, generate, parse_size
from bench.product import product_python
from bench.runner import REPO, _product_env

STAGES = (
    "startup/imports",
    "setup/tracking",
    "detect",
    "read/decode",
    "parse",
    "convert",
    "check",
    "infer types",
    "profile stats",
    "column stats",
    "send",
    "validate",
    "publish",
    "version swap",
    "other",
)


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str
    line: int

    @classmethod
    def parse(cls, text: str) -> Frame:
        # py-spy raw frames look like "function (path/to/file.py:123)" or "function (lib.so)".
        if text.endswith(")") and " (" in text:
            function, _, where = text[:-1].rpartition(" (")
            file, _, line = where.rpartition(":")
            if file and line.isdigit():
                return cls(function, file, int(line))
            return cls(function, where, 0)
        return cls(text, "", 0)

    @property
    def in_backend(self) -> bool:
        return "backend/" in self.file and "site-packages" not in self.file

    def module(self) -> str:
        return self.file.rsplit("backend/", 1)[-1] if self.in_backend else self.file


def read_samples(path: Path) -> list[tuple[list[Frame], int]]:
    """Samples of the thread doing the load (the one with most backend frames)."""
    by_thread: dict[str, list[tuple[list[Frame], int]]] = collections.defaultdict(list)
    for raw in path.read_text(errors="replace").splitlines():
        stack_text, _, count = raw.rpartition(" ")
        if not count.isdigit():
            continue
        parts = stack_text.split(";")
        thread = parts[0] if parts and parts[0].startswith("thread ") else "main"
        frames = [Frame.parse(p) for p in (parts[1:] if thread != "main" else parts) if p]
        by_thread[thread].append((frames, int(count)))
    if not by_thread:
        return []

    def weight(samples: list[tuple[list[Frame], int]]) -> int:
        return sum(n for frames, n in samples if any(f.in_backend for f in frames))

    return max(by_thread.values(), key=weight)


def _input_lines(samples: list[tuple[list[Frame], int]]) -> set[int]:
    """Lines of the csv reader's C loop that fetch the next line of text (seen calling decode/read)."""
    lines: set[int] = set()
    for frames, _ in samples:
        for i, frame in enumerate(frames[:-1]):
            if frame.function == "Reader_iternext":
                below = frames[i + 1]
                if (
                    below.function in ("decode", "read", "readline", "read1", "readinto")
                    or "decode" in below.function
                ):
                    lines.add(frame.line)
    return lines


#: Modules whose frames count as set-up and bookkeeping wherever they run.
SETUP_MODULES = (
    "load/loader.py", "load/plan.py", "load/evolve.py", "load/misfits.py", "policies.py", "config.py",
    "log.py", "cli.py", "db/engine.py", "db/schema.py", "db/dialects.py", "daemon/claim.py",
)  # fmt: skip
#: Functions of load/csv_python.py that turn parsed rows into records; the rest of the module feeds
#: the C csv reader its lines (reads, decoding, line splitting).
RECORD_FUNCTIONS = ("_records", "_runs", "_group", "_iter", "iter_records")


def classify(frames: list[Frame], input_lines: set[int]) -> str:
    """The stage of one sample: the innermost frame with a rule decides."""
    names = {f.function for f in frames}
    if "_find_and_load" in names:
        return "startup/imports"
    # Below the C csv reader's loop: either its parser (parse_*) or whatever feeds it lines
    # (file reads, hashing, decoding, line splitting), whichever Python or C code that is.
    inner = max((i for i, f in enumerate(frames) if f.function == "Reader_iternext"), default=None)
    if inner is not None:
        if inner == len(frames) - 1:
            return "read/decode" if frames[inner].line in input_lines else "parse"
        return "parse" if frames[inner + 1].function.startswith("parse_") else "read/decode"
    seen_backend = False
    for i in range(len(frames) - 1, -1, -1):
        f = frames[i]
        if f.function.startswith("parse_") and f.file.endswith("_csv.c"):
            return "parse"
        if not f.in_backend:
            continue
        seen_backend = True
        stage = _stage_of(f, frames[:i], names)
        if stage is not None:
            return stage
    return "setup/tracking" if seen_backend else ("other" if frames else "startup/imports")


def _stage_of(f: Frame, callers: list[Frame], names: set[str]) -> str | None:
    """The stage a backend frame stands for, or None to let its callers decide."""
    module = f.module()
    if module == "load/source.py":
        return "read/decode"  # HashingReader (the SHA-256 of every byte) and check_unchanged
    if module == "load/csv_python.py":
        return "parse" if f.function in RECORD_FUNCTIONS else "read/decode"
    if module == "load/arrow_csv.py":
        return "parse"  # pyarrow's streaming reader, its re-cut batches and the length check
    if module == "load/attempt.py":
        if f.function == "_file_types":
            return "infer types"
        if f.function == "_check_and_publish":
            return "publish" if "commit" in names else None
        return None
    if module == "detection/types.py" and any(g.function == "_file_types" for g in callers):
        return "infer types"
    if module.startswith("detection/"):
        return "detect"
    if module == "quality/profile.py":
        return "profile stats"
    if module in ("quality/gate.py", "quality/validation.py", "quality/hook.py"):
        return "validate"
    if module == "load/convert.py":
        return "check"
    if module in ("db/adapter.py", "db/postgresql.py", "db/sqlite.py", "db/mssql.py") and any(
        g.function in ("rows", "arrow") for g in [f, *callers[-3:]]
    ):
        return "send"  # _ExecuteMany (executemany) or _ArrowCopy (COPY of Arrow-written CSV)
    if module == "load/measure.py":
        return "column stats"
    if module == "load/stage.py":
        return "convert"
    if module == "load/arrow_stage.py":
        return "convert"
    if module in ("load/publish.py", "load/versions.py"):
        return "version swap" if "swap" in f.function or f.function == "create_version" else "publish"
    if module in SETUP_MODULES:
        return "setup/tracking"
    return None


def breakdown(samples: list[tuple[list[Frame], int]], rate: int) -> dict[str, float]:
    input_lines = _input_lines(samples)
    seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    for frames, count in samples:
        seconds[classify(frames, input_lines)] += count / rate
    return seconds


def hot_lines(samples: list[tuple[list[Frame], int]], limit: int = 25) -> list[tuple[str, int]]:
    """Self samples per source line, attributed to the innermost backend or csv frame."""
    counter: collections.Counter[str] = collections.Counter()
    for frames, count in samples:
        for frame in reversed(frames):
            if frame.in_backend or frame.file.endswith("_csv.c"):
                counter[f"{frame.module()}:{frame.line} {frame.function}"] += count
                break
        else:
            leaf = frames[-1] if frames else Frame("?", "", 0)
            counter[f"(outside backend) {leaf.function} {Path(leaf.file).name}"] += count
    return counter.most_common(limit)


@contextlib.contextmanager
def database_url(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'refdata.db'}"
        return
    from tests.conftest import PgServer

    server = PgServer.create()
    try:
        yield server.url_for("postgres").render_as_string(hide_password=False)
    finally:
        server.destroy()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_load", description=__doc__.splitlines()[0])
    p.add_argument("--size", default="100MB", help="generated file size (default 100MB)")
    p.add_argument("--file", type=Path, default=None, help="profile this file instead of a generated one")
    p.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--database-url", default=None, help="profile against this URL instead")
    p.add_argument("--mode", choices=["fullload", "append"], default="fullload")
    p.add_argument("--types", choices=["text", "infer"], default="text")
    p.add_argument("--rate", type=int, default=100, help="samples per second (default 100)")
    p.add_argument(
        "--native",
        action="store_true",
        help="also sample C frames (splits the csv reader's C loop; slows the load down ~1.5x)",
    )
    p.add_argument("--from-raw", type=Path, default=None, help="only analyse this saved raw profile")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="where the raw profile goes")
    args = p.parse_args(argv)
    if args.from_raw is not None:
        print_report(
            read_samples(args.from_raw), args.rate, f"saved profile {args.from_raw.name}", None, None
        )
        return 0
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        print("py-spy not found: .venv/bin/pip install -r requirements-dev.txt", file=sys.stderr)
        return 2
    path = args.file or generate(Spec(size_bytes=parse_size(args.size))).path
    args.out.mkdir(parents=True, exist_ok=True)
    tag = f"{args.database}-{args.mode}-{args.types}-{path.stem}" + ("-native" if args.native else "")
    raw = args.out / f"profile-{tag}.raw.txt"
    outcome = profile_once(args, py_spy, path, raw)
    if outcome is None:
        return 1
    wall, rows = outcome
    title = f"load {path.name} --mode {args.mode} --types {args.types} on {args.database}"
    report = print_report(read_samples(raw), args.rate, title, wall, rows)
    report.update({"file": str(path), "mode": args.mode, "types": args.types, "database": args.database})
    (args.out / f"profile-{tag}.json").write_text(json.dumps(report, indent=2))
    print(f"\nraw samples: {raw}")
    return 0


def profile_once(
    args: argparse.Namespace, py_spy: str, path: Path, raw: Path
) -> tuple[float, int | None] | None:
    """Prepare the database state, then run the load under py-spy; returns (wall seconds, rows)."""
    workdir = Path(tempfile.mkdtemp(prefix="profile-", dir=Path(tempfile.gettempdir())))
    env = _product_env(workdir)
    try:
        with contextlib.ExitStack() as stack:
            url = args.database_url or stack.enter_context(database_url(args.database, workdir))
            load = [product_python(), "-m", "backend", "--env-file", os.devnull, "load", str(path),
                    "--table", f"profile_{args.types}", "--types", args.types, "--database-url", url,
                    "--json"]  # fmt: skip
            # The same database state as in the benchmark: the table already holds the file.
            subprocess.run(
                [*load, "--mode", "fullload"], env=env, cwd=workdir, check=True, capture_output=True
            )
            record = [
                py_spy,
                "record",
                "--idle",
                "--threads",
                "-r",
                str(args.rate),
                "-f",
                "raw",
                "-o",
                str(raw),
            ]
            if args.native:
                record.append("--native")
            started = time.perf_counter()
            done = subprocess.run(
                [*record, "--", *load, "--mode", args.mode],
                env=env,
                cwd=workdir,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # py-spy can exit non-zero after a clean run ("No child process" when it reaps the child);
    # what counts is the load's own summary and the written profile.
    if not raw.exists() or '"rows_loaded"' not in done.stdout:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    summary: dict[str, Any] = next(
        (json.loads(x) for x in reversed(done.stdout.splitlines()) if x.startswith("{")), {}
    )
    return wall, summary.get("rows_loaded")


def print_report(
    samples: list[tuple[list[Frame], int]], rate: int, title: str, wall: float | None, rows: int | None
) -> dict[str, object]:
    """Print the stage breakdown and the hottest lines; returns them for the JSON file."""
    stages = breakdown(samples, rate)
    total = sum(stages.values()) or 1.0
    print(f"profile of: {title}")
    shown_wall = f"{wall:.2f} s" if wall is not None else "-"
    print(f"rows: {rows}, wall clock under py-spy: {shown_wall}, sampled: {total:.2f} s at {rate} Hz")
    print(f"{'stage':<18}{'seconds':>9}{'share':>8}")
    for stage in STAGES:
        if stages[stage]:
            print(f"{stage:<18}{stages[stage]:>9.2f}{100 * stages[stage] / total:>7.1f}%")
    hottest = hot_lines(samples)
    print("\nhottest lines (self time, innermost backend or csv frame):")
    for where, count in hottest:
        print(f"{count / rate:>8.2f} s  {where}")
    return {
        "rows": rows,
        "wall_seconds": None if wall is None else round(wall, 2),
        "rate": rate,
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "hot_lines": [[w, round(c / rate, 3)] for w, c in hottest],
    }


if __name__ == "__main__":
    raise SystemExit(main())
