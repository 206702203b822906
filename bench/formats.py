"""Rows/s and peak RSS of the issue-17 readers beside pandas, one whole process per run.

Writes one synthetic reference table (10 columns: ids, codes with leading zeros, text,
decimals, booleans, dates) as xlsx (xlsxwriter), NDJSON (json module), Parquet (pyarrow) and
csv.gz (gzip), then times each reader in a fresh process under GNU time (bench/measure.py):

- xlsx: our reader (openpyxl read-only + our sheet parser), plain openpyxl read-only
  (values_only), python-calamine, pandas ``read_excel`` (openpyxl engine, dtype=str);
- NDJSON: our reader (two passes) and pandas ``read_json(lines=True, dtype=False)``;
- Parquet: our reader and pandas ``read_parquet``;
- csv.gz: our decompressing stream into pyarrow's streaming CSV reader, pandas ``read_csv``.

``--ratios`` prints the compression ratios of the CSV (and of a sparse variant) behind the
default bomb limit in backend/load/readers/limits.py.

Usage::

    python -m bench.formats [--rows 850000] [--xlsx-rows 200000] [--ratios]
"""

from __future__ import annotations

import argparse
import bz2
import datetime
import gzip
import json
import lzma
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "formats"
HEADER = ["id", "code", "name", "amount", "qty", "flag", "day", "note", "city", "zip"]
CITIES = ["Paris", "Berlin", "Rome", "Madrid"]


def records(rows: int) -> Iterator[list[object]]:
    base = datetime.date(2020, 1, 1)
    for i in range(1, rows + 1):
        yield [
            i,
            f"C{i % 997:05d}",
            f"name number {i}",
            (i % 10000) / 100,
            i % 37,
            i % 2 == 0,
            base + datetime.timedelta(days=i % 2000),
            "lorem ipsum dolor sit amet " * (1 + i % 3),
            CITIES[i % 4],
            f"{i % 100000:05d}",
        ]


def csv_line(record: list[object]) -> str:
    return ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in record) + "\n"


def write_files(rows: int, xlsx_rows: int) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xlsxwriter

    OUT.mkdir(parents=True, exist_ok=True)
    paths = {k: OUT / f"table_{rows}.{k}" for k in ("csv.gz", "ndjson", "parquet")}
    paths["xlsx"] = OUT / f"table_{xlsx_rows}.xlsx"
    if not paths["csv.gz"].exists():
        with gzip.open(paths["csv.gz"], "wt", compresslevel=6) as f:
            f.write(",".join(HEADER) + "\n")
            f.writelines(csv_line(r) for r in records(rows))
    if not paths["ndjson"].exists():
        with paths["ndjson"].open("w") as f:
            for r in records(rows):
                r[6] = r[6].isoformat()  # type: ignore[union-attr]
                f.write(json.dumps(dict(zip(HEADER, r, strict=True))) + "\n")
    if not paths["parquet"].exists():
        writer = None
        chunk: list[list[object]] = []
        for r in records(rows):
            chunk.append(r)
            if len(chunk) == 100_000:
                writer = _write_chunk(pq, pa, writer, chunk, paths["parquet"])
                chunk = []
        if chunk:
            writer = _write_chunk(pq, pa, writer, chunk, paths["parquet"])
        writer.close()
    if not paths["xlsx"].exists():
        book = xlsxwriter.Workbook(str(paths["xlsx"]), {"constant_memory": True})
        sheet = book.add_worksheet("data")
        day = book.add_format({"num_format": "yyyy-mm-dd"})
        sheet.write_row(0, 0, HEADER)
        for n, r in enumerate(records(xlsx_rows), start=1):
            sheet.write_row(n, 0, r[:6])
            sheet.write_datetime(n, 6, r[6], day)
            sheet.write_row(n, 7, r[7:])
        book.close()
    return paths


def _write_chunk(pq, pa, writer, chunk, path):  # type: ignore[no-untyped-def]
    columns = list(zip(*chunk, strict=True))
    table = pa.table({name: list(values) for name, values in zip(HEADER, columns, strict=True)})
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer


# ---------------------------------------------------------------------------------- readers
def ours_xlsx(path: Path) -> int:
    from backend.load.readers.excel import ExcelWorkbook

    with path.open("rb") as f:
        return sum(b.num_rows for b in ExcelWorkbook(f, name=path.name).iter_batches(batch_rows=10_000))


def openpyxl_xlsx(path: Path) -> int:
    import openpyxl

    with path.open("rb") as f:
        book = openpyxl.load_workbook(f, read_only=True, data_only=True)
        return sum(1 for _ in book.worksheets[0].iter_rows(values_only=True)) - 1


def calamine_xlsx(path: Path) -> int:
    import python_calamine

    with path.open("rb") as f:
        sheet = python_calamine.CalamineWorkbook.from_filelike(f).get_sheet_by_index(0)
        return sum(1 for _ in sheet.iter_rows()) - 1


def pandas_xlsx(path: Path) -> int:
    import pandas as pd

    return len(pd.read_excel(path, dtype=str, engine="openpyxl"))


def ours_ndjson(path: Path) -> int:
    from backend.load.readers.jsonfile import iter_json_batches

    with path.open("rb") as f:
        batches = iter_json_batches(
            f, lambda: path.open("rb"), name=path.name, ndjson=True, batch_rows=10_000
        )
        return sum(b.num_rows for b in batches)


def pandas_ndjson(path: Path) -> int:
    import pandas as pd

    return len(pd.read_json(path, lines=True, dtype=False))


def ours_parquet(path: Path) -> int:
    from backend.load.readers.parquet import ParquetSource

    with path.open("rb") as f:
        return sum(b.num_rows for b in ParquetSource(f, name=path.name).iter_batches(10_000))


def pandas_parquet(path: Path) -> int:
    import pandas as pd

    return len(pd.read_parquet(path))


def ours_csvgz(path: Path) -> int:
    """The product's path for a compressed CSV: sniffed, detected on the decompressed stream,
    then read by the records factory the loader uses (the Python csv reader)."""
    from backend.config import Settings
    from backend.load.readers.source import open_source, sniff
    from backend.models import Record

    settings = Settings(_env_file=None, database_url="sqlite://")  # type: ignore[call-arg]
    with path.open("rb") as f:
        guess = sniff(path, f)
        if guess is None:
            raise SystemExit(f"{path.name}: not recognised as a compressed CSV")
        source = open_source(path, f, settings, guess, sheet=None)
        f.seek(0)
        return sum(1 if isinstance(item, Record) else len(item.rows) for item in source.records(f))


def pandas_csvgz(path: Path) -> int:
    import pandas as pd

    return len(pd.read_csv(path, dtype=str, keep_default_na=False))


READERS: dict[str, tuple[str, Callable[[Path], int]]] = {
    "ours-xlsx": ("xlsx", ours_xlsx),
    "openpyxl-xlsx": ("xlsx", openpyxl_xlsx),
    "calamine-xlsx": ("xlsx", calamine_xlsx),
    "pandas-xlsx": ("xlsx", pandas_xlsx),
    "ours-ndjson": ("ndjson", ours_ndjson),
    "pandas-ndjson": ("ndjson", pandas_ndjson),
    "ours-parquet": ("parquet", ours_parquet),
    "pandas-parquet": ("parquet", pandas_parquet),
    "ours-csv.gz": ("csv.gz", ours_csvgz),
    "pandas-csv.gz": ("csv.gz", pandas_csvgz),
}


def ratios(rows: int) -> None:
    """Compression ratios of a dense and a sparse reference CSV (the bomb limit's evidence)."""
    dense = "".join(csv_line(r) for r in records(rows)).encode()
    sparse = "".join(
        f"{i},,,,,,,,,N\n" if i % 50 else f"{i},a,b,c,d,e,f,g,h,N\n" for i in range(rows)
    ).encode()
    for label, data in (("dense", dense), ("sparse", sparse)):
        import zstandard

        sizes = {
            "gzip-6": len(gzip.compress(data, 6)),
            "bzip2-9": len(bz2.compress(data, 9)),
            "xz-6": len(lzma.compress(data)),
            "zstd-19": len(zstandard.ZstdCompressor(level=19).compress(data)),
        }
        shown = ", ".join(f"{k} {len(data) / v:.0f}:1" for k, v in sizes.items())
        print(f"{label} CSV ({len(data) / 1e6:.0f} MB): {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=850_000, help="rows of NDJSON/Parquet/csv.gz (~100 MB of CSV)"
    )
    parser.add_argument("--xlsx-rows", type=int, default=200_000)
    parser.add_argument("--only", nargs="*", default=list(READERS))
    parser.add_argument("--ratios", action="store_true")
    parser.add_argument("--read", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read:  # the child process that is measured
        started = time.perf_counter()
        rows = READERS[args.read[0]][1](Path(args.read[1]))
        print(rows, time.perf_counter() - started)
        return 0
    if args.ratios:
        ratios(min(args.rows, 200_000))
        return 0
    from bench.measure import run_measured

    paths = write_files(args.rows, args.xlsx_rows)
    print(f"{'reader':<16}{'rows':>10}{'seconds':>10}{'rows/s':>12}{'peak RSS MB':>13}")
    for name in args.only:
        kind, _ = READERS[name]
        run = run_measured([sys.executable, "-m", "bench.formats", "--read", name, str(paths[kind])])
        rows = int(run.stdout.strip().splitlines()[-1].split()[0])  # after any log lines
        print(
            f"{name:<16}{rows:>10,}{run.seconds:>10.1f}{rows / run.seconds:>12,.0f}{run.peak_rss_mb:>13.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
