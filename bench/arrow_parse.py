"""Parse a generated file with the csv module and with pyarrow: speed, and agreement on malformed input.

The figures behind "A fast parser (pyarrow)" in bench/RESULTS.md. Not used by the product: it
measures whether pyarrow's reader could replace the csv module on some load path.

Usage::

    python -m bench.arrow_parse [--size 100MB] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from bench.generate import Spec, generate, parse_size

#: Malformed inputs where CSV readers are known to disagree; two columns each.
MALFORMED = {
    "stray quote inside an unquoted field": 'a,b\n1,ab"c\n2,x\n',
    "text after a closing quote": 'a,b\n1,"ab"c\n2,x\n',
    "ragged row": "a,b\n1,2,3\n4,5\n",
    "bare CR line ends": "a,b\r1,2\r3,4\r",
    "blank line": "a,b\n1,2\n\n3,4\n",
    "quoted line break": 'a,b\n1,"x\ny"\n2,z\n',
}


def _arrow_reader(path: Path, header: list[str]) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 22),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
        ),
    )


def csv_module(path: Path, header: list[str]) -> int:
    rows = 0
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, strict=False)
        next(reader)
        for _ in reader:
            rows += 1
    return rows


def arrow_only(path: Path, header: list[str]) -> int:
    with _arrow_reader(path, header) as reader:
        return sum(batch.num_rows for batch in reader)


def arrow_to_csv(path: Path, header: list[str]) -> int:
    """Parse and write each batch back as canonical CSV (what COPY FORMAT csv would read)."""
    rows = 0
    options = pacsv.WriteOptions(include_header=False)
    with _arrow_reader(path, header) as reader:
        for batch in reader:
            sink = pa.BufferOutputStream()
            pacsv.write_csv(batch, sink, write_options=options)
            rows += batch.num_rows
    return rows


def arrow_sample_to_python(path: Path, header: list[str]) -> int:
    """Parse, then bring a random tenth of each batch back as Python strings (the profile's sample)."""
    rows = 0
    rng = random.Random(1)
    with _arrow_reader(path, header) as reader:
        for batch in reader:
            picked = sorted(rng.sample(range(batch.num_rows), batch.num_rows // 10))
            sample = batch.take(pa.array(picked, pa.int64()))
            rows += len(sample.column(0).to_pylist())
            for column in sample.columns[1:]:
                column.to_pylist()
    return rows


def arrow_all_to_python(path: Path, header: list[str]) -> int:
    """Parse, then every value as a Python string (what executemany or the type tracker need)."""
    rows = 0
    with _arrow_reader(path, header) as reader:
        for batch in reader:
            columns = [column.to_pylist() for column in batch.columns]
            rows += len(columns[0])
    return rows


CASES: dict[str, Callable[[Path, list[str]], int]] = {
    "csv.reader, every row": csv_module,
    "pyarrow parse only": arrow_only,
    "pyarrow parse + write_csv": arrow_to_csv,
    "pyarrow parse + 10% sample to Python": arrow_sample_to_python,
    "pyarrow parse + every value to Python": arrow_all_to_python,
}


def agreement() -> list[tuple[str, object, object]]:
    """(case, csv module's rows, pyarrow's rows or its error) for every malformed input."""
    out: list[tuple[str, object, object]] = []
    for name, text in MALFORMED.items():
        ours = [row for row in csv.reader(io.StringIO(text, newline=""), strict=False) if row]
        try:
            table = pacsv.read_csv(
                io.BytesIO(text.encode()),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={"f0": pa.string(), "f1": pa.string()}, strings_can_be_null=False
                ),
            )
            theirs: object = [list(row.values()) for row in table.to_pylist()]
        except pa.ArrowInvalid as exc:
            theirs = f"error: {str(exc).splitlines()[0]}"
        out.append((name, ours, theirs))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100MB")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    path = generate(Spec(size_bytes=parse_size(args.size))).path
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    print(f"{path.name}, pyarrow {pa.__version__}; median of {args.rounds} rounds")
    for name, case in CASES.items():
        times, rows = [], 0
        for _ in range(args.rounds):
            started = time.perf_counter()
            rows = case(path, header)
            times.append(time.perf_counter() - started)
        print(f"  {name:40s} {statistics.median(times):6.2f} s  {rows:,} rows")
    print("malformed input (csv module | pyarrow):")
    for name, ours, theirs in agreement():
        verdict = "same" if ours == theirs else "DIFFERENT"
        print(f"  {name:38s} {verdict:9s} {ours} | {theirs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
