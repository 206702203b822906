"""Run the detection benchmark: generate, read with each system, score, print, record.

Usage: ``bench/detection/run [--direct] [--keep DIR] [--only CATEGORY] [--corpus C] [--no-write]``.
Two corpora, scored and reported apart: the generated one (clean tables, every pollution
applied; written into a temporary folder, ``--keep`` to choose and keep one, never into the
repository) and the real-world one (hand-made files with hand-written truth in
``bench/detection/realworld/``). The tables go to stdout and into the "Detection" section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import re
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from bench.detection import generate, realworld_cases
from bench.detection.score import Score, score, score_refusal
from bench.detection.systems import OursCli, Prediction, clevercsv_defaults, ours_direct, sniffer
from tests.detection.corpus import Case

RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
SECTION = "## Detection"
CATEGORY_ORDER = ("encoding", "delimiter", "quoting", "line endings", "structure", "ragged", "header")


def _run(system: Callable[[Path], Prediction], case: Case, path: Path) -> Score:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return score(case, system(path))
    except Exception as exc:  # noqa: BLE001 - a reader failing on a file scores zero for that file
        return score_refusal(case, f"{type(exc).__name__}: {exc}")


def _table(names: Sequence[str], results: dict[str, dict[str, list[Score]]], cases: Sequence[Case]) -> str:
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        by_category[case.category].append(i)
    categories = [c for c in CATEGORY_ORDER if c in by_category] + sorted(
        set(by_category) - set(CATEGORY_ORDER)
    )
    head = "| category | files | " + " | ".join(f"{n}: exact | {n}: cell F1" for n in names) + " |"
    rule = "|---|---:|" + "---:|---:|" * len(names)
    lines = [head, rule]
    for category in [*categories, "overall"]:
        idx = list(range(len(cases))) if category == "overall" else by_category[category]
        cells = []
        for name in names:
            scores = [results[name]["all"][i] for i in idx]
            exact = sum(s.exact for s in scores) / len(scores)
            f1 = sum(s.f1 for s in scores) / len(scores)
            cells.append(f"{exact:.1%} | {f1:.3f}")
        label = f"**{category}**" if category == "overall" else category
        lines.append(f"| {label} | {len(idx)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_results(text: str) -> None:
    section = f"{SECTION}\n\n{text.strip()}\n"
    if RESULTS.exists():
        current = RESULTS.read_text(encoding="utf-8")
        start = current.find(SECTION + "\n")
        if start >= 0:
            end = current.find("\n## ", start + len(SECTION))
            current = current[:start] + section + (current[end + 1 :] if end >= 0 else "")
        else:
            current = current.rstrip("\n") + "\n\n" + section
    else:
        current = "# Benchmark results\n\n" + section
    RESULTS.write_text(current, encoding="utf-8")


def _losses(name: str, cases: Sequence[Case], scores: Sequence[Score]) -> tuple[str, str]:
    """(lines listing the files `name` does not read exactly, a summary by pollution)."""
    losses = [(case, s) for case, s in zip(cases, scores, strict=True) if not s.exact]
    lines = ""
    if losses:
        lines = f"\nFiles {name} does not read exactly ({len(losses)}):\n" + "\n".join(
            f"  {case.name}: F1 {s.f1:.3f}" + (f" ({s.error})" if s.error else "") for case, s in losses
        )
    by_label: dict[str, int] = defaultdict(int)
    for case, _ in losses:
        # "people/quoting/stray-quote-r3c1" -> "quoting: stray-quote" (positions pooled)
        label = re.sub(r"-r[0-9]+(?:c[0-9]+)?$", "", case.name.split("/", 2)[-1])
        by_label[f"{case.category}: {label}"] += 1
    missed = "; ".join(f"{label} ({n})" for label, n in sorted(by_label.items())) or "none"
    return lines, missed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/detection/run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--direct", action="store_true", help="score detect()+iter_records() instead of load/export"
    )
    parser.add_argument("--keep", type=Path, help="write the files into this folder and keep them")
    parser.add_argument("--only", help="only this category")
    parser.add_argument(
        "--corpus", choices=["all", "generated", "realworld"], default="all", help="which corpus to score"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args(argv)
    # The detector logs its evidence at debug level; the benchmark prints its own table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    corpora: dict[str, list[Case]] = {}
    if args.corpus in ("all", "generated"):
        corpora["generated"] = generate.build()
    if args.corpus in ("all", "realworld"):
        corpora["realworld"] = realworld_cases.build()
    if args.only:
        corpora = {k: [c for c in v if c.category == args.only] for k, v in corpora.items()}
        corpora = {k: v for k, v in corpora.items() if v}
    ours_name = "ours (detect+read)" if args.direct else "ours (load+export)"
    results: dict[str, dict[str, list[Score]]] = {}
    seconds: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="refdata-detect-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        systems: dict[str, Callable[[Path], Prediction]] = {
            ours_name: ours_direct if args.direct else OursCli(Path(tmp)),
            "clevercsv read_table": clevercsv_defaults,
            "csv.Sniffer": sniffer,
        }
        for corpus, cases in corpora.items():
            paths = []
            for n, case in enumerate(cases):
                # Real-world files keep their own extension (.txt, .tsv, .dat...).
                suffix = "" if corpus == "realworld" else ".csv"
                path = folder / f"{corpus[:1]}{n:04d}_{case.name.replace('/', '_')}{suffix}"
                path.write_bytes(case.data)
                paths.append(path)
            results[corpus] = {}
            seconds[corpus] = {}
            for name, system in systems.items():
                started = time.perf_counter()
                results[corpus][name] = [
                    _run(system, case, path) for case, path in zip(cases, paths, strict=True)
                ]
                seconds[corpus][name] = time.perf_counter() - started

    sections: list[str] = []
    for corpus, cases in corpora.items():
        table = _table(list(systems), {n: {"all": r} for n, r in results[corpus].items()}, cases)
        timing = ", ".join(f"{name} {secs:.1f} s" for name, secs in seconds[corpus].items())
        lines, missed = _losses(ours_name, cases, results[corpus][ours_name])
        print(f"\n### {corpus}\n\n{table}\n\n{len(cases)} files; time: {timing}")
        print(lines)
        sections.append(
            _DESCRIPTIONS[corpus].format(files=len(cases))
            + "\n\n"
            + table
            + f"\n\n{len(cases)} files; time: {timing}.\n\n"
            + f"Files ours does not read exactly, by pollution (count): {missed}.\n"
        )
    if not args.no_write and not args.only and args.corpus == "all":
        method = (
            "detect()+iter_records() (the cells the loader stages)"
            if args.direct
            else "`python -m backend load --ragged-rows repair --allow-empty` then `export`, SQLite"
        )
        _write_results(
            "Generated by `bench/detection/run`. Ours: "
            + method
            + ". clevercsv: `read_table` defaults (chardet encoding, whole-file detection) and its "
            "`Detector.has_header`. csv.Sniffer: `sniff`/`has_header` on 64 KiB, `csv.reader`, UTF-8. "
            "Exact = header and every row equal to the truth (a file the truth says must be refused: "
            "exact when refused with the expected reason); cell F1 over (column, value) cells.\n\n"
            + "\n".join(sections)
        )
    return 0


_DESCRIPTIONS = {
    "generated": (
        "### Generated corpus\n\n{files} polluted files from 6 clean tables (2-12 columns; quoted text, "
        "numbers, dates, empty cells), every pollution of the detection issue applied (per-row pollutions "
        "at every row, stray quotes at every row and column). Issue 16 changed the truth of 7 files: the 6 "
        "`second-table` files (a second table with its own header) must be refused as stacked tables, and "
        "`narrow/structure/trailer-0` keeps `Total,123` as a data row (as wide as the table, not the sum of "
        "the column)."
    ),
    "realworld": (
        "### Real-world corpus\n\n{files} hand-made files in `bench/detection/realworld/`, each with its "
        "expected table written by hand: the shapes of issue 16 (padded title rows, instrument headers, "
        "trailing delimiters, clashing names, stacked tables, header-only and headerless files, "
        "space-delimited and `'`-quoted files, short-code headers, rows that look like totals, `sep=` "
        "hints, one-column files with blank lines) and exports of Excel (UTF-8 with BOM, Windows, "
        "Macintosh, Unicode Text), SAS, SPSS, Stata, R, pandas, databases, banks and ERPs, German, "
        "French and Dutch locales, instruments and loggers. Before the detector changes of issue 16 "
        "(commit 7e9ab5d) the same files scored: ours (load+export) 43.2% exact, clevercsv 39.2%, "
        "csv.Sniffer 32.4%. The two header-only files miss only in `export` (a zero-row table is exported "
        "under its SQL names, issue 16 item 6); `--direct` (detect+read) reads all 74 exactly."
    ),
}
