"""A workbook's sheet as the load pipeline sees it: title rows and header found as for CSV.

The first `SAMPLE_ROWS` non-empty rows of the sheet go through the CSV layout and header
detection (`backend.detection.table.analyse`), padded to one width as a CSV saved from Excel
would be, so a title row above the table and a header spread over merged rows are handled by
the same rules as in a CSV. The rows below the header are then read from the sheet, streaming.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TypeVar

from backend.config import Settings
from backend.detection import TAIL_RECORDS
from backend.errors import DetectionError, EmptyFileError
from backend.load.csv_python import Run
from backend.load.readers.formats import Format
from backend.load.readers.limits import DecompressionLimits
from backend.load.readers.sniff import FormatGuess
from backend.load.readers.source import (
    SAMPLE_ROWS,
    RecordsFactory,
    base_detection,
    fit_width,
    rows_in_runs,
    sample_types,
    take,
)
from backend.load.readers.view import drain, open_view
from backend.models import Detection, Record

T = TypeVar("T")


def open_workbook(
    path: Path,
    raw: IO[bytes],
    settings: Settings,
    guess: FormatGuess,
    limits: DecompressionLimits,
    sheet: str | int | None,
    *,
    trailer_detection: bool = True,
) -> tuple[Detection, RecordsFactory]:
    """Detect the table on the chosen sheet and build the factory that reads its rows.

    Args:
        trailer_detection: the table's ``trailer_detection:`` policy; False keeps every row.

    Raises:
        SheetNotFoundError: the ``sheet:`` policy names no sheet of the workbook.
        EncryptedFileError, DamagedFileError, DecompressionBombError: the workbook cannot be read.
        EmptyFileError, DetectionError: the sheet holds no table (as for a CSV).
    """
    from backend.detection.dialect import SampleRecord
    from backend.detection.table import Options, analyse
    from backend.load.readers.excel import ExcelWorkbook

    fmt = Format.XLS if guess.format is Format.XLS else guess.format
    with open_view(raw) as view, ExcelWorkbook(view, name=path.name, fmt=fmt, limits=limits) as book:
        names = book.sheet_names()
        index = book.sheet_index(sheet)
        numbered = ((r.number, r.cells) for r in book.iter_numbered_rows(index))
        sample = take(numbered, SAMPLE_ROWS + 1)
        complete = len(sample) <= SAMPLE_ROWS
        # A sheet has no byte offsets to read its end from: its last rows come from reading on,
        # as the JSON reader reads its whole file before the first batch. Only when a trailer
        # may be dropped, and only for a sheet larger than the sample.
        tail: list[tuple[int, list[str]]] = []
        total: int | None = None
        if trailer_detection and not complete:
            tail, total = _last_rows(sample[SAMPLE_ROWS:], numbered, TAIL_RECORDS)
    sample = sample[:SAMPLE_ROWS]
    width = max((len(cells) for _, cells in sample), default=0)
    # Sheet row numbers as the records' lines: a blank sheet row is a gap, as a blank line is in
    # a CSV (it separates a note below the table from it, see `detection.trailer`).
    records = [SampleRecord(n, n, _padded(cells, width)) for n, cells in sample]
    try:
        shape = analyse(
            records,
            width,
            delimiter=",",
            complete=complete,
            tail=None if complete else [SampleRecord(n, n, _padded(c, width)) for n, c in tail],
            options=Options(trailer_detection=trailer_detection),
        )
    except (DetectionError, EmptyFileError) as exc:
        exc.path = exc.path or path
        raise
    # `skip_rows` counts sheet rows above the table; the reader counts the non-empty ones.
    start = next(i for i, (n, _) in enumerate(sample) if n > shape.skip_rows)
    skip = start + shape.header_rows
    trailer = len(shape.trailer)
    headers = shape.headers if shape.header_rows else tuple("" for _ in range(shape.fit.width))
    header_width = len(headers)
    # A complete sheet's trailer rows are in the sample; a larger sheet's are below it.
    body = sample[skip : len(sample) - trailer] if complete else sample[skip:]
    data = [fit_width(cells, header_width) for _, cells in body]
    estimated = len(data) if complete else None if total is None else total - skip - trailer
    detection = base_detection(
        guess,
        headers,
        header_rows=shape.header_rows,
        skip_rows=shape.skip_rows,
        skipped_lines=shape.skipped,
        trailer_rows=trailer,
        trailer_lines=shape.trailer,
        column_types=sample_types([d for d in data if d is not None], header_width, settings),
        sample_rows=len(data),
        estimated_rows=estimated,  # a sheet announces no row count
        sheet=names[index],
        sheets=tuple(names),
        warnings=_format_warnings(guess) + tuple(shape.warnings),
    )

    def records_of(stream: IO[bytes]) -> Iterator[Run | Record]:
        drain(stream)
        with open_view(raw) as again, ExcelWorkbook(again, name=path.name, fmt=fmt, limits=limits) as wb:
            rows = ((r.number, r.cells) for r in wb.iter_numbered_rows(index))
            for _ in range(skip):
                if next(rows, None) is None:
                    return
            yield from rows_in_runs(_held_back(rows, trailer), header_width, settings.ingest_batch_size)

    return detection, records_of


def _padded(cells: list[str], width: int) -> list[str]:
    # Padded to one width as a CSV saved from Excel is (it writes every row of the used range).
    return cells + [""] * (width - len(cells))


def _last_rows(
    beyond: list[tuple[int, list[str]]], rows: Iterator[tuple[int, list[str]]], count: int
) -> tuple[list[tuple[int, list[str]]], int]:
    """The last `count` rows below the sample and how many rows the sheet has in all.

    Args:
        beyond: the rows already read past the sample.
        rows: the rest of the sheet, read to its end here.
        count: rows kept (memory stays bounded by them).
    """
    last: deque[tuple[int, list[str]]] = deque(beyond, maxlen=count)
    read = SAMPLE_ROWS + len(beyond)
    for row in rows:
        last.append(row)
        read += 1
    return list(last), read


def _held_back(rows: Iterator[T], count: int) -> Iterator[T]:
    """`rows` without their last `count` (the trailer), read one look-ahead window at a time."""
    if count <= 0:
        yield from rows
        return
    window: deque[T] = deque()
    for row in rows:
        window.append(row)
        if len(window) > count:
            yield window.popleft()


def _format_warnings(guess: FormatGuess) -> tuple[str, ...]:
    return (f"read as {guess.format}: {guess.mismatch}",) if guess.mismatch else ()
