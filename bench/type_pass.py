"""Time the first pass of ``--types infer`` (`backend.load.type_pass`) on one file, both ways.

The Python pass (the csv module's rows into `TypeTracker.observe`, the only way before) and the
Arrow pass (string arrays into `ArrowTypeTracker.observe_arrow`) read the same detected file
inside this process, alternately, `--repeat` times each; prints each run, the medians and
whether both decided the same types (they must). Usage::

    python -m bench.type_pass FILE [--repeat 5] [--paths python,arrow]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from backend.models import ColumnType


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.type_pass", description=__doc__)
    p.add_argument("file", type=Path)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--paths", default="python,arrow", help="python, arrow or both, comma-separated")
    args = p.parse_args(argv)
    from backend.config import load_settings
    from backend.detection import detect
    from backend.load.type_pass import arrow_pass, python_pass

    settings = load_settings({}, env_file=None)
    detection = detect(args.file, settings)
    width = len(detection.headers)
    passes = {
        "python": lambda raw: python_pass(raw, detection, width=width, date_order=settings.date_order),
        "arrow": lambda raw: arrow_pass(raw, detection, width=width, date_order=settings.date_order),
    }
    wanted = args.paths.split(",")
    seconds: dict[str, list[float]] = {name: [] for name in wanted}
    types: dict[str, tuple[ColumnType, ...]] = {}
    for run in range(args.repeat):
        for name in wanted:
            with open(args.file, "rb") as raw:
                started = time.perf_counter()
                types[name] = passes[name](raw)
                seconds[name].append(time.perf_counter() - started)
            print(f"run {run + 1} {name}: {seconds[name][-1]:.3f} s", flush=True)
    report: dict[str, object] = {
        name: {"median_seconds": round(statistics.median(s), 3), "runs": [round(x, 3) for x in s]}
        for name, s in seconds.items()
    }
    if len(types) > 1:
        report["same_types"] = len({repr(t) for t in types.values()}) == 1
    report["types"] = [
        f"{t.kind.value}({t.precision},{t.scale}) {t.date_format or ''}".strip()
        for t in next(iter(types.values()))
    ]
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
