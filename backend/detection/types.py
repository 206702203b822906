"""Column types decided over a whole file, and text -> Python value conversion.

Rules (the same for every column):

* Empty strings and None are NULL: they never decide a type.
* One misfit value keeps a column TEXT; so do leading zeros (``007``, zip codes), a leading
  ``+``, exponents (``1e5``), thousands separators (``1,234``) and decimal commas (``3,14``):
  storing those as numbers would change what the file says.
* Integers: ``-?(0|[1-9][0-9]*)``; 32-bit -> INTEGER, 64-bit -> BIGINT, up to 38 digits ->
  DECIMAL(p, 0), longer -> TEXT.
* Decimals: integer part as above, then ``.`` and at least one digit; precision is the most
  integer digits plus the largest scale (capped at 38, else TEXT).
* Booleans: ``true/false``, ``t/f``, ``yes/no``, ``y/n`` in any case. ``0``/``1`` stay INTEGER:
  a 0/1 column is as often a count or a code as a flag, and an integer loses nothing.
* Dates: ``Y-M-D``, ``Y/M/D``, ``Y.M.D`` and day-first or month-first ``D/M/Y``, ``M/D/Y``
  (separators ``/ . -``), day and month with or without a leading zero, four-digit years only.
  Day/month validity (including 29 February) is checked. When a column fits both day-first and
  month-first, a column of the same file that proves an order (a first number above 12 proves
  day-first) decides; otherwise ``date_order`` decides; with ``auto`` the column stays TEXT,
  because a guessed order silently swaps days and months.
* Datetimes: a date as above, then ``T`` (year-first only) or a space, then ``HH:MM``,
  ``HH:MM:SS`` or ``HH:MM:SS.ffffff``. One strptime format must parse every value, so a column
  mixing ``10:00`` and ``10:00:00`` stays TEXT. Values with a time zone stay TEXT.
* Every column also tracks its longest value in characters (TEXT columns need it, and any
  column may turn TEXT at its last row).

`TypeTracker.observe` only buffers rows; every few thousand rows the buffer is transposed and
each still-typed column is checked with one anchored regular expression over the joined
values, so the per-cell work runs in C.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from backend.models import ColumnKind, ColumnType

_BATCH_ROWS = 4096
_DATE_CACHE = 100_000  # validated date strings remembered per column
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_MAX_PRECISION = 38

TRUE_WORDS = frozenset({"true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"false", "f", "no", "n"})

_INT_PAT = r"-?(?:0|[1-9][0-9]*)"
_DEC_PAT = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_BOOL_PAT = r"(?i:true|false|yes|no|t|f|y|n)"

# Month/day pairs that exist in some year; 29 February is checked separately for leap years.
_D31 = r"(?:0?[1-9]|[12][0-9]|3[01])"
_D30 = r"(?:0?[1-9]|[12][0-9]|30)"
_D29 = r"(?:0?[1-9]|1[0-9]|2[0-9])"
_M31 = r"(?:0?[13578]|1[02])"
_M30 = r"(?:0?[469]|11)"
_M02 = r"0?2"


def _md(sep: str) -> str:
    s = re.escape(sep)
    return f"(?:{_M31}{s}{_D31}|{_M30}{s}{_D30}|{_M02}{s}{_D29})"


def _dm(sep: str) -> str:
    s = re.escape(sep)
    return f"(?:{_D31}{s}{_M31}|{_D30}{s}{_M30}|{_D29}{s}{_M02})"


@dataclass(frozen=True, slots=True)
class _Format:
    """One candidate date or datetime shape."""

    name: str
    kind: ColumnKind
    order: str  # ymd | dmy | mdy
    pattern: str  # regex of one value
    strptime: str
    feb29: re.Pattern[str]  # finds the year of every 29 February in joined values
    feb29_needles: tuple[str, ...]  # cheap substring test before running `feb29`


def _date_formats() -> list[_Format]:
    times = [
        (r"(?:[01][0-9]|2[0-3]):[0-5][0-9]", "%H:%M"),
        (r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]", "%H:%M:%S"),
        (r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{1,6}", "%H:%M:%S.%f"),
    ]
    out: list[_Format] = []
    for sep in ("-", "/", "."):
        s = re.escape(sep)
        dates = [
            (
                "ymd",
                rf"[0-9]{{4}}{s}{_md(sep)}",
                f"%Y{sep}%m{sep}%d",
                rf"([0-9]{{4}}){s}0?2{s}29\b",
                f"2{sep}29",
            ),
            (
                "dmy",
                rf"{_dm(sep)}{s}[0-9]{{4}}",
                f"%d{sep}%m{sep}%Y",
                rf"(?<![0-9])29{s}0?2{s}([0-9]{{4}})",
                f"29{sep}",
            ),
            (
                "mdy",
                rf"{_md(sep)}{s}[0-9]{{4}}",
                f"%m{sep}%d{sep}%Y",
                rf"(?<![0-9])0?2{s}29{s}([0-9]{{4}})",
                f"2{sep}29",
            ),
        ]
        for order, pat, fmt, feb, needle in dates:
            feb29 = re.compile(feb)
            out.append(_Format(f"date {fmt}", ColumnKind.DATE, order, pat, fmt, feb29, (needle,)))
            joiners = [" ", "T"] if (order == "ymd" and sep == "-") else [" "]
            for joiner in joiners:
                for tpat, tfmt in times:
                    full = f"{fmt}{joiner}{tfmt}"
                    out.append(
                        _Format(
                            f"datetime {full}",
                            ColumnKind.DATETIME,
                            order,
                            f"{pat}{joiner}{tpat}",
                            full,
                            feb29,
                            (needle,),
                        )
                    )
    return out


_FORMATS = _date_formats()


def _joined(pattern: str) -> re.Pattern[str]:
    """A regex matching non-empty values of `pattern` joined by newlines."""
    return re.compile(f"(?:{pattern})(?:\\n(?:{pattern}))*")


# Candidate ids: 0 integer, 1 decimal, 2 boolean, 3.. date formats (in _FORMATS order).
_INT, _DEC, _BOOL = 0, 1, 2
_CANDIDATE_RES: list[re.Pattern[str]] = [_joined(_INT_PAT), _joined(_DEC_PAT), _joined(_BOOL_PAT)] + [
    _joined(f.pattern) for f in _FORMATS
]
_ALL_CANDIDATES = tuple(range(len(_CANDIDATE_RES)))

# Single-value classification (used on samples, e.g. by header detection).
_ONE_INT = re.compile(_INT_PAT)
_ONE_DEC = re.compile(_DEC_PAT)
_ONE_BOOL = re.compile(_BOOL_PAT)
_ONE_DATE = [(re.compile(f.pattern), f) for f in _FORMATS]


@functools.cache
def _longer_fraction(scale: int) -> re.Pattern[str]:
    return re.compile(rf"\.[0-9]{{{scale + 1}}}")


@functools.cache
def _longer_int_part(digits: int) -> re.Pattern[str]:
    return re.compile(rf"\n-?[0-9]{{{digits + 1}}}")


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def value_kind(text: str | None) -> ColumnKind | None:
    """The narrowest kind one value fits (None for NULL); dates in any supported order."""
    if not text:
        return None
    if _ONE_INT.fullmatch(text):
        return ColumnKind.INTEGER
    if _ONE_DEC.fullmatch(text):
        return ColumnKind.DECIMAL
    if _ONE_BOOL.fullmatch(text):
        return ColumnKind.BOOLEAN
    if not (8 <= len(text) <= 26 and text[0].isdigit()):
        return ColumnKind.TEXT
    for regex, fmt in _ONE_DATE:
        if regex.fullmatch(text):
            years = fmt.feb29.findall(text)
            if all(_leap(int(y)) for y in years):
                return fmt.kind
    return ColumnKind.TEXT


class TypeTracker:
    """Decides each column's type from every value it is shown.

    Args:
        column_count: number of columns; shorter rows count as NULL in the missing columns,
            values past the last column are ignored.
        date_order: "auto", "dmy", "mdy" or "ymd" (see the module docstring).

    `observe` keeps a reference to the row until the next internal flush (at most a few
    thousand rows later): do not mutate a row after passing it.
    """

    def __init__(self, column_count: int, *, date_order: str = "auto") -> None:
        if date_order not in ("auto", "dmy", "mdy", "ymd"):
            raise ValueError(f"date_order must be auto, dmy, mdy or ymd, not {date_order!r}")
        self._n = column_count
        self._date_order = date_order
        self._rows: list[Sequence[str | None]] = []
        self._max_len = [0] * column_count
        self._seen = [False] * column_count
        self._candidates: list[list[int]] = [list(_ALL_CANDIDATES) for _ in range(column_count)]
        self._int_min = [0] * column_count
        self._int_max = [0] * column_count
        self._int_digits = [0] * column_count
        self._scale = [0] * column_count
        self._bool_words: list[set[str]] = [set() for _ in range(column_count)]
        self._date_seen: list[set[str] | None] = [set() for _ in range(column_count)]
        self._rows_seen = 0

    @property
    def rows_seen(self) -> int:
        """Rows observed so far."""
        return self._rows_seen + len(self._rows)

    def observe(self, values: Sequence[str | None]) -> None:
        """Take one row into account (cheap: the work happens in batches)."""
        rows = self._rows
        rows.append(values)
        if len(rows) >= _BATCH_ROWS:
            self._flush()

    def observe_columns(self, columns: Sequence[Sequence[str | None]]) -> None:
        """Take a batch of rows already transposed into columns (one per column, equal lengths)."""
        self._flush()
        if columns:
            self._rows_seen += len(columns[0])
            self._take(columns)

    def _flush(self) -> None:
        rows = self._rows
        if not rows:
            return
        self._rows = []
        self._rows_seen += len(rows)
        # zip_longest pads short rows with NULL; columns past the last are dropped by islice.
        self._take(itertools.islice(itertools.zip_longest(*rows), self._n))

    def _take(self, columns: Iterable[Sequence[str | None]]) -> None:
        max_len = self._max_len
        candidates = self._candidates
        for i, column in enumerate(columns):
            values = list(filter(None, column))
            if not values:
                continue
            self._seen[i] = True
            longest = max(map(len, values))
            if longest > max_len[i]:
                max_len[i] = longest
            if candidates[i]:
                self._check(i, values, longest)

    def _check(self, i: int, values: list[str], longest: int) -> None:
        seen = self._date_seen[i]
        if seen is not None and self._candidates[i][0] > _BOOL:
            # Only date shapes are left: values already validated need no second look, and
            # reference data repeats its dates a lot. Mostly-unique columns stop caching.
            fresh = set(values)
            fresh.difference_update(seen)
            if not fresh:
                return
            if 2 * len(fresh) > len(values):
                self._date_seen[i] = seen = None
            values = list(fresh)
        joined = "\n".join(values)
        if joined.count("\n") != len(values) - 1:
            # A value holds a line break: no typed pattern allows one.
            self._candidates[i] = []
            return
        alive: list[int] = []
        for c in self._candidates[i]:
            # Every integer is a decimal: skip the second, slower scan.
            if (c == _DEC and alive and alive[0] == _INT) or _CANDIDATE_RES[c].fullmatch(joined):
                if c > _BOOL and not self._feb29_ok(c, joined):
                    continue
                alive.append(c)
        self._candidates[i] = alive
        if not alive:
            return
        if seen is not None and alive[0] > _BOOL and len(seen) < _DATE_CACHE:
            seen.update(values)
        if alive[0] == _INT:
            if longest >= 10:
                self._track_int_range(i, values, longest)
            # Integer digits for a later decimal: the longest value, unless a sign may be in it.
            if longest > self._int_digits[i]:
                digits = longest
                if "-" in joined:
                    digits = self._int_digits[i]
                    while _longer_int_part(digits).search("\n" + joined):
                        digits += 1
                self._int_digits[i] = digits
        elif _DEC in alive:
            # Grow scale and integer digits only when a value exceeds them: one C-level search each.
            scale = self._scale[i]
            while _longer_fraction(scale).search(joined):
                scale += 1
            self._scale[i] = scale
            digits = self._int_digits[i]
            while _longer_int_part(digits).search("\n" + joined):
                digits += 1
            self._int_digits[i] = digits
        if _BOOL in alive:
            self._bool_words[i].update(v.lower() for v in set(values))

    @staticmethod
    def _feb29_ok(candidate: int, joined: str) -> bool:
        fmt = _FORMATS[candidate - 3]
        if not any(needle in joined for needle in fmt.feb29_needles):
            return True
        years = fmt.feb29.findall(joined)
        return not years or all(_leap(int(y)) for y in set(years))

    def _track_int_range(self, i: int, values: list[str], longest: int) -> None:
        # Only values long enough to leave the current range matter: 10+ digits can leave
        # int32, 19+ int64, 39+ the widest decimal.
        lo, hi = self._int_min[i], self._int_max[i]
        if lo < _INT64[0] or hi > _INT64[1]:
            floor = 39
        elif lo < _INT32[0] or hi > _INT32[1]:
            floor = 19
        else:
            floor = 10
        if longest < floor:
            return
        ints = [int(v) for v in values if len(v) >= floor]
        if ints:
            self._int_min[i] = min(lo, *ints)
            self._int_max[i] = max(hi, *ints)

    def result(self) -> tuple[ColumnType, ...]:
        """Each column's type over all rows observed so far."""
        self._flush()
        proven = self._proven_orders()
        return tuple(self._column_type(i, proven) for i in range(self._n))

    def _proven_orders(self) -> set[str]:
        """Date orders some column proves (it fits that order and not the other)."""
        proven: set[str] = set()
        for alive in self._candidates:
            orders = {_FORMATS[c - 3].order for c in alive if c > _BOOL}
            if orders == {"dmy"} or orders == {"mdy"}:
                proven |= orders
        return proven

    def _column_type(self, i: int, proven: set[str]) -> ColumnType:
        length = self._max_len[i]
        alive = self._candidates[i]
        text = ColumnType(ColumnKind.TEXT, length=length)
        if not self._seen[i] or not alive:
            return text
        if _INT in alive:
            lo, hi = self._int_min[i], self._int_max[i]
            if _INT32[0] <= lo and hi <= _INT32[1]:
                return ColumnType(ColumnKind.INTEGER, length=length)
            if _INT64[0] <= lo and hi <= _INT64[1]:
                return ColumnType(ColumnKind.BIGINT, length=length)
            digits = max(len(str(abs(lo))), len(str(abs(hi))))
            if digits <= _MAX_PRECISION:
                return ColumnType(ColumnKind.DECIMAL, length=length, precision=digits, scale=0)
            return text
        if _DEC in alive:
            scale = self._scale[i]
            precision = max(self._int_digits[i], 1) + scale
            if precision <= _MAX_PRECISION:
                return ColumnType(ColumnKind.DECIMAL, length=length, precision=precision, scale=scale)
            return text
        if _BOOL in alive:
            words = self._bool_words[i]
            # A column of lone letters ("F", "Y") is only a flag when both truth values occur.
            if all(len(w) == 1 for w in words) and not (words & TRUE_WORDS and words & FALSE_WORDS):
                return text
            return ColumnType(ColumnKind.BOOLEAN, length=length)
        formats = [_FORMATS[c - 3] for c in alive if c > _BOOL]
        chosen = self._pick_format(formats, proven)
        if chosen is None:
            return text
        return ColumnType(chosen.kind, length=length, date_format=chosen.strptime)

    def _pick_format(self, formats: list[_Format], proven: set[str]) -> _Format | None:
        if not formats:
            return None
        orders = {f.order for f in formats}
        if len(orders) == 1:
            return formats[0]
        # Ambiguous between day-first and month-first (year-first never overlaps them):
        # an order proven by another column wins, then the configured order.
        if len(proven) == 1:
            wanted = next(iter(proven))
        elif self._date_order in ("dmy", "mdy"):
            wanted = self._date_order
        else:
            return None
        picked = [f for f in formats if f.order == wanted]
        return picked[0] if picked else None


def parse_value(text: str | None, column_type: ColumnType) -> object:
    """Convert one cell to the Python value stored for `column_type`.

    Returns None for NULL (None or "") in non-text columns; TEXT returns the text unchanged.
    Raises ValueError when the text does not fit the type.
    """
    kind = column_type.kind
    if kind is ColumnKind.TEXT:
        return text
    if not text:
        return None
    if kind is ColumnKind.INTEGER or kind is ColumnKind.BIGINT:
        if not _ONE_INT.fullmatch(text):
            raise ValueError(f"not an integer: {text!r}")
        return int(text)
    if kind is ColumnKind.DECIMAL:
        if not _ONE_DEC.fullmatch(text):
            raise ValueError(f"not a decimal: {text!r}")
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            raise ValueError(f"not a decimal: {text!r}") from None
    if kind is ColumnKind.BOOLEAN:
        low = text.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(f"not a boolean: {text!r}")
    fmt = column_type.date_format
    if not fmt:
        raise ValueError(f"{kind.value} column without a date format")
    if kind is ColumnKind.DATE:
        if fmt == "%Y-%m-%d" and len(text) == 10:
            return date.fromisoformat(text)
        return datetime.strptime(text, fmt).date()
    if fmt.startswith("%Y-%m-%d") and len(text) >= 16 and text[4] == "-" and text[7] == "-":
        # fromisoformat is ~10x faster than strptime; the tracker already checked the shape.
        return datetime.fromisoformat(text)
    return datetime.strptime(text, fmt)
