"""xlsx/xlsm through openpyxl in read-only mode, with a lean cell parser of our own.

openpyxl opens the package and reads the shared strings, the styles and the workbook epoch.
The sheets are parsed here: openpyxl's read-only parser builds a dict per cell and an object
per inline string (half our speed, bench/formats.py) and leaves every parsed row in the tree
(RSS grows ~80 bytes a row). `_TextSheetParser` turns each ``<c>`` element straight into the
text `cells` specifies and drops rows once read. It uses openpyxl internals (``_get_source``,
``_shared_strings``, ``_date_formats``, ``_cell_styles``): openpyxl is pinned, and the tests
read files written by openpyxl and by xlsxwriter.
"""

from __future__ import annotations

import datetime
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any, BinaryIO
from xml.etree.ElementTree import ParseError

import openpyxl
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse
from openpyxl.styles.numbers import BUILTIN_FORMATS, BUILTIN_FORMATS_MAX_SIZE
from openpyxl.utils.datetime import from_excel
from openpyxl.xml.constants import SHEET_MAIN_NS

from backend.load.readers.cells import DateKind, date_kind, duration, excel_number, iso_datetime, iso_time
from backend.load.readers.errors import DamagedFileError, DecompressionBombError
from backend.load.readers.limits import DecompressionLimits

#: Excel's own sheet limits; a file beyond them was not written by Excel and is refused rather
#: than read for hours (a row numbered 10^9 would otherwise be a gap to fill).
MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
#: An xlsx with more parts than this is no spreadsheet export (its directory is read in memory).
MAX_PACKAGE_PARTS = 10_000
_V = f"{{{SHEET_MAIN_NS}}}v"
_IS = f"{{{SHEET_MAIN_NS}}}is"
_T = f"{{{SHEET_MAIN_NS}}}t"
_R = f"{{{SHEET_MAIN_NS}}}r"
_ROW = f"{{{SHEET_MAIN_NS}}}row"
_SHEET_DATA = f"{{{SHEET_MAIN_NS}}}sheetData"
_DIGITS = "0123456789"


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters.upper():
        index = index * 26 + ord(letter) - 64
    return index


def _root_cause(exc: BaseException) -> BaseException:
    """The first error in a chain (openpyxl wraps the XML parser's in a generic ValueError)."""
    seen = 0
    while (exc.__cause__ or exc.__context__) is not None and seen < 10:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return exc


class _TextSheetParser:
    """A streaming sheet parser yielding (row number, [cell text]) per ``<row>``.

    defusedxml's ``iterparse`` refuses DTDs and entity tricks (billion laughs) in the sheet.
    """

    def __init__(self, source: BinaryIO, book: OpenpyxlBook, title: str) -> None:
        self.source = source
        self.row_counter = 0
        self._book = book
        self._title = title
        self._columns: dict[str, int] = {}

    def parse(self) -> Iterator[tuple[int, list[str]]]:
        """Rows only, dropping each parsed row from the tree.

        openpyxl clears a row element but leaves it in ``sheetData``, which then grows by ~80
        bytes a row (205 MB peak for 1,048,576 rows); removing the rows keeps memory flat.
        """
        data = None
        for event, element in iterparse(self.source, events=("start", "end")):
            if event == "end":
                if element.tag == _ROW:
                    yield self.parse_row(element)
                    if data is not None:
                        data.clear()
            elif element.tag == _SHEET_DATA:
                data = element

    def parse_row(self, row: Any) -> tuple[int, list[str]]:
        number = row.get("r")
        self.row_counter = int(float(number)) if number is not None else self.row_counter + 1
        if self.row_counter > MAX_ROWS:
            raise DamagedFileError(
                f"sheet {self._title!r} has a row numbered {self.row_counter:,}, beyond Excel's "
                f"{MAX_ROWS:,}: the file was not written by Excel; export it again",
                path=self._book.name,
            )
        values: list[str] = []
        for cell in row:
            reference = cell.get("r")
            if reference is None:
                column = len(values) + 1
            else:
                letters = reference.rstrip(_DIGITS)
                column = self._columns.get(letters) or self._columns.setdefault(
                    letters, _column_index(letters)
                )
            if column > MAX_COLUMNS:
                raise DamagedFileError(
                    f"sheet {self._title!r} has a cell in column {column:,}, beyond Excel's {MAX_COLUMNS:,}",
                    path=self._book.name,
                )
            if column > len(values):
                values.extend([""] * (column - len(values)))
            values[column - 1] = self._book.cell_text(cell)
        return self.row_counter, values


class OpenpyxlBook:
    """An xlsx/xlsm workbook opened read-only."""

    def __init__(self, source: BinaryIO, name: str, limits: DecompressionLimits) -> None:
        self.name = name
        check_package(source, name, limits)
        source.seek(0)
        try:
            # openpyxl warns about parts it drops (data validation extensions, missing default
            # styles); they do not change cell values, so they are not the operator's concern.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._wb: Any = openpyxl.load_workbook(
                    source, read_only=True, data_only=True, keep_links=False
                )
        except Exception as exc:  # openpyxl raises anything (even AttributeError) on a malformed package
            raise DamagedFileError(
                f"is not a readable Excel workbook ({_root_cause(exc)!r})", path=name
            ) from exc
        self._sheets: list[Any] = list(self._wb.worksheets)
        self.shared_strings: list[str] = self._sheets[0]._shared_strings if self._sheets else []
        self._kinds = self._date_kinds()

    def _date_kinds(self) -> dict[int, DateKind | None]:
        """Style id -> how its date format shows the value (None: an elapsed duration)."""
        wb = self._wb
        kinds: dict[int, DateKind | None] = {}
        for style_id in wb._date_formats:
            fmt_id = wb._cell_styles[style_id].numFmtId
            if fmt_id < BUILTIN_FORMATS_MAX_SIZE:
                fmt = BUILTIN_FORMATS.get(fmt_id, "General")
            else:
                fmt = wb._number_formats[fmt_id - BUILTIN_FORMATS_MAX_SIZE]
            kinds[style_id] = None if style_id in wb._timedelta_formats else date_kind(fmt)
        return kinds

    def sheet_names(self) -> list[str]:
        return [sheet.title for sheet in self._sheets]

    def default_sheet(self) -> int:
        states = [getattr(sheet, "sheet_state", "visible") for sheet in self._sheets]
        return states.index("visible") if "visible" in states else 0

    def rows(self, index: int) -> Iterator[tuple[int, list[str]]]:
        sheet = self._sheets[index]
        with sheet._get_source() as source:
            try:
                yield from _TextSheetParser(source, self, sheet.title).parse()
            except (
                ParseError,
                DefusedXmlException,
                ValueError,
                IndexError,
                KeyError,
                zipfile.BadZipFile,
            ) as exc:
                raise DamagedFileError(
                    f"sheet {sheet.title!r} is damaged ({exc!r}); open and save it in Excel, "
                    f"or export it again",
                    path=self.name,
                ) from exc

    def cell_text(self, cell: Any) -> str:
        """One ``<c>`` element as text (types per ECMA-376 18.18.11: n, s, str, inlineStr, b, e, d)."""
        kind = cell.get("t", "n")
        if kind == "inlineStr":
            inline = cell.find(_IS)
            if inline is None:
                return ""
            # Plain text or rich-text runs; phonetic hints (rPh) are not part of the value.
            parts = [t.text or "" for t in inline.findall(_T)]
            parts += [t.text or "" for run in inline.findall(_R) for t in run.findall(_T)]
            return "".join(parts)
        value: str | None = cell.findtext(_V)
        if not value:
            return ""  # an empty (styled) cell, or a formula never calculated (<v></v>)
        if kind == "n":
            style = cell.get("s")
            kinds = self._kinds
            if style is not None and int(style) in kinds:
                return self._date_text(value, kinds[int(style)])
            if "." in value or "e" in value or "E" in value:
                return excel_number(float(value))
            return value  # an integer exactly as written
        if kind == "s":
            return str(self.shared_strings[int(value)])
        if kind == "b":
            return "true" if value == "1" else "false"
        if kind == "d":  # ISO 8601 cell (Strict OOXML); rare
            style = cell.get("s")
            parsed = datetime.datetime.fromisoformat(value)
            return iso_datetime(parsed, self._kinds.get(int(style or 0)) or "datetime")
        return value  # str (a formula's text result) and e (errors such as #N/A) verbatim

    def _date_text(self, value: str, kind: DateKind | None) -> str:
        number = float(value)
        try:
            converted = from_excel(number, self._wb.epoch, timedelta=kind is None)
        except (OverflowError, ValueError):
            return excel_number(number)  # Excel shows ##### here; the serial is the truth
        if isinstance(converted, datetime.timedelta):
            return duration(converted)
        if isinstance(converted, datetime.time):
            return iso_time(converted)  # a serial below 1 is a time of day whatever the format
        return iso_datetime(converted, kind or "datetime")

    def close(self) -> None:
        self._wb.close()


def check_package(source: BinaryIO, name: str, limits: DecompressionLimits) -> None:
    """Refuse an xlsx whose parts would decompress beyond the bomb limits, before opening it.

    Python's zipfile stops every part at its declared size (and then fails the CRC), so the
    declared sizes bound what openpyxl can ever produce: checking them up front is enough.
    """
    source.seek(0, 2)
    size = source.tell()
    source.seek(0)
    try:
        with zipfile.ZipFile(source) as package:
            parts = package.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DamagedFileError(
            f"is not a readable Excel workbook (the zip package is damaged or incomplete: {exc})", path=name
        ) from exc
    if len(parts) > MAX_PACKAGE_PARTS:
        raise DamagedFileError(f"has {len(parts):,} package parts; not an Excel export", path=name)
    declared = sum(part.file_size for part in parts)
    if declared > limits.max_output_bytes or (
        declared > limits.ratio_grace_bytes and declared > limits.max_ratio * max(size, 1)
    ):
        raise DecompressionBombError(
            f"the workbook's parts declare {declared:,} bytes from a {size:,}-byte file, beyond the "
            f"decompression limits; nothing was loaded",
            path=name,
        )
