"""Date shapes: the calendar pattern decides what the shape and the leap-year check decide."""

from __future__ import annotations

import itertools
import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from backend.detection.dates import FORMATS, LEAP_YEAR, LENIENT_FORMATS, DateFormat
from backend.detection.types import _leap

YEARS = ["0000", "0004", "0100", "0400", "1600", "1700", "1900", "1996", "1999", "2000", "2023", "2024"]
YEARS += ["2100", "2400", "9996", "9999", "999", "20240"]
MONTHS = ["00", "0", "1", "01", "2", "02", "03", "04", "09", "10", "11", "12", "13", "20"]
DAYS = ["00", "0", "1", "01", "9", "10", "28", "29", "30", "31", "32", "40"]
#: Times whose digits could pass for a 29 February if a lookup strayed from the date part.
TIMES = {"%H:%M": "02:29", "%H:%M:%S": "10:02:29", "%H:%M:%S.%f": "10:02:29.022024"}


def _values(fmt: DateFormat) -> list[str]:
    """Every year, month and day spelling above in `fmt`'s layout (most of them invalid)."""
    sep = next(c for c in fmt.strptime if c in "-/.")
    time = ""
    if " " in fmt.strptime or "T" in fmt.strptime:
        joiner = "T" if "T" in fmt.strptime else " "
        time = joiner + TIMES[fmt.strptime.split(joiner, 1)[1]]
    layouts = {"ymd": "{y}{s}{m}{s}{d}", "dmy": "{d}{s}{m}{s}{y}", "mdy": "{m}{s}{d}{s}{y}"}
    return [
        layouts[fmt.order].format(y=y, m=m, d=d, s=sep) + time
        for y, m, d in itertools.product(YEARS, MONTHS, DAYS)
    ]


class TestCalendarPattern:
    @pytest.mark.parametrize("fmt", FORMATS + LENIENT_FORMATS, ids=lambda f: f"{f.name} {f.pattern[:6]}")
    def test_calendar_takes_what_shape_and_leap_check_take(self, fmt: DateFormat) -> None:
        """In Python and in RE2 the calendar pattern takes a value exactly when the shape does and
        its 29 February, if any, falls in a leap year."""
        values = _values(fmt)
        shape, calendar = re.compile(fmt.pattern), re.compile(fmt.calendar)
        wanted = [
            bool(shape.fullmatch(v)) and all(_leap(int(y)) for y in fmt.feb29.findall(v)) for v in values
        ]
        assert [bool(calendar.fullmatch(v)) for v in values] == wanted
        re2 = pc.match_substring_regex(pa.array(values), f"^(?:{fmt.calendar})$").to_pylist()
        assert re2 == wanted
        assert any(wanted) and not all(wanted)

    def test_leap_years_are_those_of_the_gregorian_calendar(self) -> None:
        """LEAP_YEAR takes a four-digit year exactly when it is a leap year (0000 included)."""
        years = [f"{y:04d}" for y in range(10000)]
        assert [bool(re.fullmatch(LEAP_YEAR, y)) for y in years] == [_leap(int(y)) for y in years]

    @pytest.mark.parametrize(
        ("value", "fits"),
        [
            ("2024-02-29", True),
            ("2023-02-29", False),
            ("1900-02-29", False),
            ("2000-02-29", True),
            ("2023-02-28", True),
            ("2023-02-29T10:00:00", False),
            ("2024-02-29T10:00:00", True),
        ],
    )
    def test_twenty_ninth_of_february(self, value: str, fits: bool) -> None:
        """29 February exists in leap years only, dates and datetimes alike."""
        fmt = next(f for f in FORMATS if re.fullmatch(f.pattern, value))
        assert bool(re.fullmatch(fmt.calendar, value)) is fits
