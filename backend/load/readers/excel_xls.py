"""Legacy binary .xls workbooks through python-calamine (openpyxl reads only the XML formats).

calamine reads the whole sheet into memory; a .xls sheet is capped at 65,536 rows x 256
columns by the format, so memory stays proportional to a file that is itself bounded. Known
difference from the xlsx path: calamine gives error cells (``#N/A``) as empty strings.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import BinaryIO

import olefile
import python_calamine

from backend.load.readers.cells import duration, excel_number, iso_datetime, iso_time
from backend.load.readers.errors import DamagedFileError, EncryptedFileError, UnsupportedFormatError

_ENCRYPTED_STREAMS = {"encryptioninfo", "encryptedpackage"}


def check_ole(source: BinaryIO, name: str) -> None:
    """Refuse an OLE compound file that is encrypted or holds no Excel workbook stream."""
    source.seek(0)
    try:
        with olefile.OleFileIO(source) as ole:
            streams = {"/".join(entry).lower() for entry in ole.listdir()}
    except OSError as exc:
        raise DamagedFileError(f"is not a readable legacy Excel file ({exc})", path=name) from exc
    finally:
        source.seek(0)
    if streams & _ENCRYPTED_STREAMS:
        raise EncryptedFileError(
            "is a password-protected (encrypted) Excel workbook; save it without a password "
            "and drop it again",
            path=name,
        )
    if not streams & {"workbook", "book"}:
        raise UnsupportedFormatError(
            "is an OLE compound document (Word, Outlook, ...) but not an Excel workbook", path=name
        )


def cell_text(value: object) -> str:
    """A calamine cell value as text, by the same rules as the xlsx path."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return excel_number(value)
    if isinstance(value, datetime.datetime):
        return iso_datetime(value, "datetime")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return iso_time(value)
    if isinstance(value, datetime.timedelta):
        return duration(value)
    return str(value)


class CalamineBook:
    """A .xls workbook; sheets are read whole, one at a time."""

    def __init__(self, source: BinaryIO, name: str) -> None:
        self._name = name
        check_ole(source, name)
        try:
            self._wb = python_calamine.CalamineWorkbook.from_filelike(source)
        except python_calamine.PasswordError as exc:
            raise EncryptedFileError(
                "is a password-protected .xls; save it without a password and drop it again", path=name
            ) from exc
        except python_calamine.CalamineError as exc:
            raise DamagedFileError(f"is not a readable legacy Excel file ({exc})", path=name) from exc
        self._meta = [m for m in self._wb.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]

    def sheet_names(self) -> list[str]:
        return [m.name for m in self._meta]

    def default_sheet(self) -> int:
        visible = [m.visible == python_calamine.SheetVisibleEnum.Visible for m in self._meta]
        return visible.index(True) if True in visible else 0

    def rows(self, index: int) -> Iterator[tuple[int, list[str]]]:
        sheet = self._wb.get_sheet_by_name(self._meta[index].name)
        start = sheet.start
        first_row, first_column = start if start is not None else (0, 0)
        # calamine's range starts at the first used cell; row numbers and leading empty
        # columns are restored so rows line up with the xlsx path.
        for offset, values in enumerate(sheet.iter_rows()):
            yield first_row + offset + 1, [""] * first_column + [cell_text(v) for v in values]

    def close(self) -> None:
        self._wb.close()
