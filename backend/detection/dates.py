"""The date and datetime shapes a column may have, as regular expressions and strptime formats.

Exact shapes admit only values their strptime format writes back character for character (two-
digit days and months, six-digit fractions); lenient ones (single values, e.g. for header
detection) also take ``1/2/2024``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backend.models import ColumnKind


# Month/day pairs that exist in some year; 29 February is checked separately for leap years
# (`feb_last` "8" leaves it out, for `DateFormat.calendar`, which adds it back for leap years).
# `pad` is "0?" for the lenient single-value shapes and "0" for columns (two digits, so that
# the date format writes every value back as it was).
def _parts(pad: str, feb_last: str = "9") -> tuple[str, str, str, str, str, str]:
    d31 = rf"(?:{pad}[1-9]|[12][0-9]|3[01])"
    d30 = rf"(?:{pad}[1-9]|[12][0-9]|30)"
    d29 = rf"(?:{pad}[1-9]|1[0-9]|2[0-{feb_last}])"
    m31 = rf"(?:{pad}[13578]|1[02])"
    m30 = rf"(?:{pad}[469]|11)"
    return d31, d30, d29, m31, m30, rf"{pad}2"


def _md(sep: str, pad: str, feb_last: str = "9") -> str:
    d31, d30, d29, m31, m30, m02 = _parts(pad, feb_last)
    s = re.escape(sep)
    return f"(?:{m31}{s}{d31}|{m30}{s}{d30}|{m02}{s}{d29})"


def _dm(sep: str, pad: str, feb_last: str = "9") -> str:
    d31, d30, d29, m31, m30, m02 = _parts(pad, feb_last)
    s = re.escape(sep)
    return f"(?:{d31}{s}{m31}|{d30}{s}{m30}|{d29}{s}{m02})"


#: A four-digit leap year: divisible by 4 and not by 100 (the last two digits a nonzero multiple of
#: 4), or by 400 (the first two digits a multiple of 4, then 00). ``0000`` is one, as for `_leap`.
LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"


@dataclass(frozen=True, slots=True)
class DateFormat:
    """One candidate date or datetime shape."""

    name: str
    kind: ColumnKind
    order: str  # ymd | dmy | mdy
    pattern: str  # regex of one value
    #: `pattern` with 29 February in leap years only: what `pattern` and `feb29` decide
    #: together, in one match (Python and RE2 alike), for the vectorised checks.
    calendar: str
    strptime: str
    feb29: re.Pattern[str]  # finds the year of every 29 February in joined values
    feb29_needles: tuple[str, ...]  # cheap substring test before running `feb29`


def date_formats(*, exact: bool) -> list[DateFormat]:
    """The date and datetime shapes; `exact` ones only admit values their format writes back."""
    pad = "0" if exact else "0?"
    fraction = "{6}" if exact else "{1,6}"
    times = [
        (r"(?:[01][0-9]|2[0-3]):[0-5][0-9]", "%H:%M"),
        (r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]", "%H:%M:%S"),
        (rf"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{fraction}", "%H:%M:%S.%f"),
    ]
    out: list[DateFormat] = []
    for sep in ("-", "/", "."):
        s = re.escape(sep)
        leap_day = rf"{pad}2{s}29"
        dates = [
            (
                "ymd",
                rf"[0-9]{{4}}{s}{_md(sep, pad)}",
                rf"(?:[0-9]{{4}}{s}{_md(sep, pad, '8')}|{LEAP_YEAR}{s}{leap_day})",
                f"%Y{sep}%m{sep}%d",
                # Not ``\b``: in ``2023-02-29T10:00`` no word boundary follows the day.
                rf"([0-9]{{4}}){s}0?2{s}29(?![0-9])",
                f"2{sep}29",
            ),
            (
                "dmy",
                rf"{_dm(sep, pad)}{s}[0-9]{{4}}",
                rf"(?:{_dm(sep, pad, '8')}{s}[0-9]{{4}}|29{s}{pad}2{s}{LEAP_YEAR})",
                f"%d{sep}%m{sep}%Y",
                rf"(?<![0-9])29{s}0?2{s}([0-9]{{4}})",
                f"29{sep}",
            ),
            (
                "mdy",
                rf"{_md(sep, pad)}{s}[0-9]{{4}}",
                rf"(?:{_md(sep, pad, '8')}{s}[0-9]{{4}}|{leap_day}{s}{LEAP_YEAR})",
                f"%m{sep}%d{sep}%Y",
                rf"(?<![0-9])0?2{s}29{s}([0-9]{{4}})",
                f"2{sep}29",
            ),
        ]
        for order, pat, calendar, fmt, feb, needle in dates:
            year_of = re.compile(feb)
            out.append(
                DateFormat(f"date {fmt}", ColumnKind.DATE, order, pat, calendar, fmt, year_of, (needle,))
            )
            joiners = [" ", "T"] if (order == "ymd" and sep == "-") else [" "]
            for joiner in joiners:
                for tpat, tfmt in times:
                    full = f"{fmt}{joiner}{tfmt}"
                    out.append(
                        DateFormat(
                            f"datetime {full}",
                            ColumnKind.DATETIME,
                            order,
                            f"{pat}{joiner}{tpat}",
                            f"{calendar}{joiner}{tpat}",
                            full,
                            year_of,
                            (needle,),
                        )
                    )
    return out


#: Shapes of typed columns (exact) and of single values (lenient).
FORMATS = date_formats(exact=True)
LENIENT_FORMATS = date_formats(exact=False)
