"""A workbook's sheet as the load pipeline sees it: title rows and header found as for CSV.

The first `SAMPLE_ROWS` non-empty rows of the sheet go through the CSV layout and header
detection (`backend.detection.table.analyse`), padded to one width as a CSV saved from Excel
would be, so a title row above the table and a header spread over merged rows are handled by
the same rules as in a CSV. The rows below the header are then read from the sheet, streaming.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

from backend.config import Settings
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


def open_workbook(
    path: Path,
    raw: IO[bytes],
    settings: Settings,
    guess: FormatGuess,
    limits: DecompressionLimits,
    sheet: str | int | None,
) -> tuple[Detection, RecordsFactory]:
    """Detect the table on the chosen sheet and build the factory that reads its rows.

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
    sample = sample[:SAMPLE_ROWS]
    width = max((len(cells) for _, cells in sample), default=0)
    padded = [cells + [""] * (width - len(cells)) for _, cells in sample]
    records = [SampleRecord(i + 1, i + 1, cells) for i, cells in enumerate(padded)]
    try:
        shape = analyse(
            records,
            width,
            delimiter=",",
            complete=complete,
            tail=None if complete else [],
            # A total row at the bottom of a sheet is data unless the policy says otherwise.
            options=Options(trailer_detection=False),
        )
    except (DetectionError, EmptyFileError) as exc:
        exc.path = exc.path or path
        raise
    skip = shape.skip_rows + shape.header_rows
    headers = shape.headers if shape.header_rows else tuple("" for _ in range(shape.fit.width))
    header_width = len(headers)
    data = [fit_width(cells, header_width) for _, cells in sample[skip:]]
    detection = base_detection(
        guess,
        headers,
        header_rows=shape.header_rows,
        skip_rows=shape.skip_rows,
        skipped_lines=shape.skipped,
        column_types=sample_types([d for d in data if d is not None], header_width, settings),
        sample_rows=len(data),
        estimated_rows=len(data) if complete else None,  # a sheet announces no row count
        sheet=names[index],
        sheets=tuple(names),
    )

    def records_of(stream: IO[bytes]) -> Iterator[Run | Record]:
        drain(stream)
        with open_view(raw) as again, ExcelWorkbook(again, name=path.name, fmt=fmt, limits=limits) as wb:
            rows = ((r.number, r.cells) for r in wb.iter_numbered_rows(index))
            for _ in range(skip):
                if next(rows, None) is None:
                    return
            yield from rows_in_runs(rows, header_width, settings.ingest_batch_size)

    return detection, records_of
