"""The readers compared: ours (load + export, or detect + iter_records) and two baselines.

Each returns a `Prediction`: the header it found (None when it says the file has none) and
the data rows. Baselines get the benefit of the doubt: their own ``has_header`` decides the
header, blank rows are dropped, and when their dialect detection gives up the excel dialect
is used instead of failing the file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

#: Characters a csv.Sniffer sample and a CleverCSV header check read.
SAMPLE_CHARS = 64 * 1024


@dataclass(frozen=True)
class Prediction:
    """What a reader made of one file."""

    header: tuple[str, ...] | None
    rows: list[list[str]]
    delimiter: str


def ours_direct(path: Path) -> Prediction:
    """detect() + iter_records(): the cells the loader stages, before the database."""
    from backend.config import Settings
    from backend.detection import detect
    from backend.load.csv_python import iter_records

    detection = detect(path, Settings(_env_file=None))  # type: ignore[call-arg]
    header = detection.headers if detection.header_rows else None
    rows = [r.values for r in iter_records(path, detection)]
    return Prediction(header, rows, detection.delimiter)


class OursCli:
    """``python -m backend load`` then ``export`` (in-process), into one SQLite database."""

    def __init__(self, workdir: Path) -> None:
        self._db = f"sqlite:///{(workdir / 'bench.db').as_posix()}"
        self._workdir = workdir
        self._count = 0
        os.environ.setdefault("LOG_LEVEL", "ERROR")

    def __call__(self, path: Path) -> Prediction:
        from backend.cli import main

        self._count += 1
        table = f"t{self._count:04d}"
        out = self._workdir / f"{table}.export.csv"
        common = ["--env-file", os.devnull]
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            code = main(
                [
                    *common,
                    "load",
                    str(path),
                    "--table",
                    table,
                    "--database-url",
                    self._db,
                    "--ragged-rows",
                    "repair",
                    "--allow-empty",
                ]
            )
            if code != 0:
                # The whole message: a refusal's reason is scored by its text.
                raise RuntimeError(f"load failed ({code}): {sink.getvalue().strip()}")
            # --names: a headerless file's table then exports column_1.. (else no header line),
            # which is how this adapter tells "no header" from a first data row.
            code = main([*common, "export", table, "--names", "--database-url", self._db, "--out", str(out)])
        if code != 0:
            raise RuntimeError(f"export failed ({code}): {sink.getvalue().strip()[-300:]}")
        with open(out, encoding="utf-8", newline="") as handle:
            table_rows = list(csv.reader(handle))
        header = tuple(table_rows[0]) if table_rows else ()
        generated = tuple(f"column_{i}" for i in range(1, len(header) + 1))
        return Prediction(None if header == generated else header, table_rows[1:], ",")


def _split_header(rows: list[list[str]], has_header: bool) -> tuple[tuple[str, ...] | None, list[list[str]]]:
    rows = [r for r in rows if r]
    if has_header and rows:
        return tuple(rows[0]), rows[1:]
    return None, rows


def clevercsv_defaults(path: Path) -> Prediction:
    """clevercsv.read_table with its defaults (chardet encoding, whole-file detection)."""
    import clevercsv
    from clevercsv.exceptions import NoDetectionResult

    encoding = clevercsv.encoding.get_encoding(path)
    with open(path, encoding=encoding, newline="") as handle:
        sample = handle.read(SAMPLE_CHARS)
    try:
        rows = clevercsv.read_table(path, encoding=encoding)
        dialect = clevercsv.Detector().detect(sample)
        delimiter = (dialect.delimiter if dialect is not None else None) or ","
    except NoDetectionResult:
        rows = clevercsv.read_table(path, dialect="excel", encoding=encoding)
        delimiter = ","
    try:
        has_header = clevercsv.Detector().has_header(sample)
    except NoDetectionResult:
        has_header = True
    header, data = _split_header(rows, has_header)
    return Prediction(header, data, delimiter)


def sniffer(path: Path) -> Prediction:
    """csv.Sniffer on a 64 KiB sample, then csv.reader; UTF-8 as Python opens files by default."""
    with open(path, encoding="utf-8", newline="") as handle:
        sample = handle.read(SAMPLE_CHARS)
        sniffer_ = csv.Sniffer()
        try:
            dialect: type[csv.Dialect] | csv.Dialect = sniffer_.sniff(sample)
        except csv.Error:
            dialect = csv.excel
        try:
            has_header = sniffer_.has_header(sample)
        except csv.Error:
            has_header = True
        handle.seek(0)
        rows = list(csv.reader(handle, dialect))
    header, data = _split_header(rows, has_header)
    return Prediction(header, data, dialect.delimiter or ",")
