"""Excel workbooks (.xlsx, .xlsm, and .xls) as rows of text and as Arrow batches.

Engine: openpyxl in read-only mode for .xlsx/.xlsm. Measured against python-calamine on a
200,000-row sheet (bench/formats.py): calamine reads ~9x faster but materialises the whole
sheet (peak RSS grows ~1 KB per row: ~1 GB for a full 1,048,576-row sheet) and turns error
cells such as ``#N/A`` into empty strings; openpyxl streams the sheet XML with flat memory and
keeps error text. Bounded memory and exact values decide. The legacy binary .xls is read by
python-calamine (`excel_xls`), since openpyxl cannot; the format itself caps it at 65,536 rows.

How a sheet appears (the same for both engines):

- Rows in sheet order; a row whose cells are all empty is no row (like a blank CSV line), and
  trailing empty cells are dropped. Each row carries its sheet row number (1-based) for errors.
- An empty cell inside a row is ``""``, like an empty CSV field.
- A merged range shows its value in its top-left cell and ``""`` in the others; title rows and
  merged header cells are left to the header detection, which reads `iter_rows`.
- Formulas load as the value Excel cached when it last saved the file (none: ``""``).
- Hidden rows, columns and sheets are data like any other.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import pyarrow as pa

from backend.errors import RowError
from backend.load.readers.batches import DEFAULT_BATCH_ROWS, BatchBuffer, rows_to_batch
from backend.load.readers.cells import (
    column_letter,
)
from backend.load.readers.errors import SheetNotFoundError
from backend.load.readers.formats import Format
from backend.load.readers.limits import DecompressionLimits

#: Excel's widest sheet; naming columns A..XFD needs no more.
MAX_COLUMNS = 16_384


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One non-empty row of a sheet, as text, with its 1-based row number in the sheet."""

    number: int
    cells: list[str]


class _Book(Protocol):
    def sheet_names(self) -> list[str]: ...
    def default_sheet(self) -> int: ...
    def rows(self, index: int) -> Iterator[tuple[int, list[str]]]: ...
    def close(self) -> None: ...


class ExcelWorkbook:
    """An open workbook: its sheet names, a sheet's rows as text, or a sheet as batches.

    Args:
        source: the workbook, opened in binary mode and seekable (the file itself, not a
            decompressing stream).
        name: the file name, for messages.
        fmt: `Format.XLSX`/`XLSM` (openpyxl) or `Format.XLS` (python-calamine).
        limits: bomb limits applied to the package's parts.
    """

    def __init__(
        self,
        source: BinaryIO,
        *,
        name: str,
        fmt: Format = Format.XLSX,
        limits: DecompressionLimits | None = None,
    ) -> None:
        self.name = name
        if fmt is Format.XLS:
            from backend.load.readers.excel_xls import CalamineBook  # only .xls needs calamine

            self._book: _Book = CalamineBook(source, name)
        else:
            from backend.load.readers.excel_xlsx import OpenpyxlBook

            self._book = OpenpyxlBook(source, name, limits or DecompressionLimits())

    def __enter__(self) -> ExcelWorkbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the workbook (the source stream stays open: its opener closes it)."""
        self._book.close()

    def sheet_names(self) -> list[str]:
        """The worksheet names in workbook order (chart sheets left out)."""
        return self._book.sheet_names()

    def sheet_index(self, sheet: str | int | None) -> int:
        """Resolve a sheet given by name or 0-based index; None is the first visible sheet."""
        names = self.sheet_names()
        if sheet is None:
            if not names:
                raise SheetNotFoundError("the workbook has no worksheet", path=self.name)
            return self._book.default_sheet()
        if isinstance(sheet, int) and 0 <= sheet < len(names):
            return sheet
        if isinstance(sheet, str) and sheet in names:
            return names.index(sheet)
        raise SheetNotFoundError(
            f"has no sheet {sheet!r}; its sheets are {', '.join(map(repr, names))}. "
            f"Set the table's sheet: policy to one of them (a name or a 0-based index)",
            path=self.name,
        )

    def iter_numbered_rows(self, sheet: str | int | None = None) -> Iterator[SheetRow]:
        """Non-empty rows of `sheet` as text, each with its sheet row number."""
        for number, cells in self._book.rows(self.sheet_index(sheet)):
            while cells and cells[-1] == "":
                cells.pop()
            if cells:
                yield SheetRow(number, cells)

    def iter_rows(self, sheet: str | int | None = None) -> Iterator[list[str]]:
        """Non-empty rows of `sheet` as lists of text (for the header detection)."""
        for row in self.iter_numbered_rows(sheet):
            yield row.cells

    def iter_batches(
        self,
        sheet: str | int | None = None,
        *,
        header_row: int | None = 0,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """The rows below the header as batches of text, one column per header cell.

        Args:
            sheet: name, 0-based index, or None for the first visible sheet.
            header_row: position of the header among the rows `iter_rows` yields (rows above
                it, such as titles, are skipped); None: no header, columns are named A, B, ...
            batch_rows: most rows per batch.

        Raises:
            RowError: a row has a value to the right of the last header column.
        """
        rows = self.iter_numbered_rows(sheet)
        if header_row is None:  # no header: the first row fixes the width, columns A, B, ...
            first = next(rows, None)
            if first is None:
                return
            names = [column_letter(i) for i in range(len(first.cells))]
            rows = itertools.chain([first], rows)
        else:
            found = next(itertools.islice(rows, header_row, None), None)
            if found is None:
                return
            names = found.cells
        buffer = BatchBuffer(names, batch_rows)
        produced = False
        for row in rows:
            batch = buffer.add(self._fit(row, len(names), sheet))
            if batch is not None:
                produced = True
                yield batch
        last = buffer.flush()
        if last is not None or not produced:  # a header without rows still names the columns
            yield last if last is not None else rows_to_batch(buffer.schema, [])

    def _fit(self, row: SheetRow, width: int, sheet: str | int | None) -> list[str]:
        cells = row.cells
        if len(cells) > width:
            raise RowError(
                f"row {row.number} of sheet {self.sheet_names()[self.sheet_index(sheet)]!r} has a value "
                f"in column {column_letter(len(cells) - 1)}, right of the last named column "
                f"{column_letter(width - 1)}; give that column a header or clear the cell",
                path=self.name,
                rows=(row.number,),
            )
        return cells + [""] * (width - len(cells))
