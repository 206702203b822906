"""Spreadsheet cell values as the text a user sees in Excel.

Rules (issue 17): numbers without float noise, at Excel's own precision of 15 significant
digits (what Excel keeps of typed input and shows in the formula bar, so a cached ``=0.1+0.2``
loads as ``0.3``) and never in exponent form for ordinary magnitudes; integers without ``.0``;
dates as ISO text chosen by the cell's number format (``2024-01-31``, ``2024-01-31 08:30:00``,
``08:30:00``; milliseconds only when present); durations (``[h]:mm``) as ``36:00:00``;
booleans ``true``/``false``. Other number formats (percent, currency, decimals shown) are not
applied: the value is loaded, not its decoration.
"""

from __future__ import annotations

import datetime
import math
import re
from decimal import Decimal
from typing import Literal

DateKind = Literal["date", "datetime", "time"]
_LITERALS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]|_.|\*.')
#: Digits Excel keeps of a number (IEEE doubles shown to 15 significant digits).
EXCEL_DIGITS = 15


def date_kind(number_format: str) -> DateKind:
    """Whether a date number format shows a date, a date and time, or only a time."""
    code = _LITERALS.sub("", number_format.lower())
    has_time = "h" in code or "s" in code or "am/pm" in code or "a/p" in code
    has_date = "y" in code or "d" in code or ("m" in code and not has_time) or "e" in code
    if has_date and has_time:
        return "datetime"
    return "time" if has_time else "date"


def excel_number(value: float | int) -> str:
    """A number cell as Excel shows it at full precision: 42, 0.1, 0.333333333333333, 1E+25."""
    if isinstance(value, int):
        return str(value)  # written as an integer in the file: kept digit for digit
    if not math.isfinite(value):
        return "#NUM!"  # Excel has no NaN or infinity; its own cells show this error
    if value == 0:
        return "0"
    text = f"{value:.{EXCEL_DIGITS}g}"
    if "e" not in text:
        return text
    number = Decimal(text)
    if -20 <= number.adjusted() <= 20:
        return format(number, "f")
    mantissa, exponent = text.split("e")
    return f"{mantissa}E{int(exponent):+03d}"


def iso_time(value: datetime.time) -> str:
    """``08:30:00``, or ``08:30:00.250`` when the time has a fraction of a second."""
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def iso_datetime(value: datetime.datetime, kind: DateKind) -> str:
    """A date cell in the form its number format shows: date, date and time, or time."""
    if kind == "date":
        return value.date().isoformat()
    if kind == "time":
        return iso_time(value.time())
    return value.isoformat(sep=" ", timespec="milliseconds" if value.microsecond else "seconds")


def duration(value: datetime.timedelta) -> str:
    """An elapsed-time cell (``[h]:mm:ss``) as hours:minutes:seconds, hours unbounded."""
    milliseconds = round(value.total_seconds() * 1000)
    sign = "-" if milliseconds < 0 else ""
    seconds, fraction = divmod(abs(milliseconds), 1000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:03d}" if fraction else text


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: the spreadsheet name of a column."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters
