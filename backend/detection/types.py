"""Column types decided over a whole file, and text -> Python value conversion.

Rules (the same for every column):

A column is typed only when every value can be written back exactly as the file has it: the
stored value plus the column's type (scale, date format, boolean spelling) give the text back,
character for character. Hence:

* Empty strings and None are NULL: they never decide a type.
* One misfit value keeps a column TEXT; so do leading zeros (``007``, zip codes), a leading
  ``+``, a negative zero (``-0``, ``-0.00``), exponents (``1e5``), thousands separators
  (``1,234``) and decimal commas (``3,14``): storing those as numbers would change what the file says.
* Integers: ``0|-?[1-9][0-9]*``; 32-bit -> INTEGER, 64-bit -> BIGINT, up to 38 digits ->
  DECIMAL(p, 0), longer -> TEXT.
* Decimals: integer part as above, then ``.`` and the same number of digits in every value
  (``1.50`` and ``2.25``; ``1.5`` beside ``2.25`` stays TEXT, since a DECIMAL(3, 2) would give
  ``1.50`` back); precision is the most integer digits plus the scale (capped at 38, else TEXT).
  An integer beside decimals keeps the column TEXT for the same reason.
* Booleans: one spelling pair per column: ``true/false``, ``t/f``, ``yes/no`` or ``y/n``, all
  lower case, all upper case or (words) capitalised; the pair is recorded and written back.
  ``0``/``1`` stay INTEGER: a 0/1 column is as often a count or a code as a flag.
* Dates: ``Y-M-D``, ``Y/M/D``, ``Y.M.D`` and day-first or month-first ``D/M/Y``, ``M/D/Y``
  (separators ``/ . -``), day and month with two digits, four-digit years only (``1/2/2024``
  stays TEXT: a date column would give ``01/02/2024`` back).
  Day/month validity (including 29 February) is checked. When a column fits both day-first and
  month-first, a column of the same file that proves an order (a first number above 12 proves
  day-first) decides; otherwise ``date_order`` decides; with ``auto`` the column stays TEXT,
  because a guessed order silently swaps days and months.
* Datetimes: a date as above, then ``T`` (year-first only) or a space, then ``HH:MM``,
  ``HH:MM:SS`` or ``HH:MM:SS.ffffff`` (exactly six digits: the fraction is written back so).
  One strptime format must parse every value, so a column mixing ``10:00`` and ``10:00:00``
  stays TEXT. Values with a time zone stay TEXT.
* Every column also tracks its longest value in characters (TEXT columns need it, and any
  column may turn TEXT at its last row).

`TypeTracker.observe` only buffers rows; every few thousand rows the buffer is transposed and
each still-typed column is checked with one anchored regular expression over the joined
values, so the per-cell work runs in C. `arrow_types.ArrowTypeTracker` takes the same decisions
from Arrow string arrays (the CSV load's Arrow reader), without a Python object per value.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from backend.detection.dates import FORMATS, LENIENT_FORMATS, DateFormat
from backend.models import ColumnKind, ColumnType

_BATCH_ROWS = 4096
_DATE_CACHE = 100_000  # validated date strings remembered per column
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_MAX_PRECISION = 38

TRUE_WORDS = frozenset({"true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"false", "f", "no", "n"})


def _spelling_pairs() -> dict[str, tuple[str, str]]:
    """Every accepted boolean spelling -> the (true, false) pair it belongs to."""
    pairs: dict[str, tuple[str, str]] = {}
    for true, false in (("true", "false"), ("yes", "no"), ("t", "f"), ("y", "n")):
        styles = [str.lower, str.upper] + ([str.capitalize] if len(true) > 1 else [])
        for style in styles:
            pair = (style(true), style(false))
            pairs[pair[0]] = pairs[pair[1]] = pair
    return pairs


#: Boolean spellings a column may use; all its values must belong to one pair.
BOOLEAN_PAIRS = _spelling_pairs()

_INT_PAT = r"0|-?[1-9][0-9]*"
# Lenient shape for single values (header detection); columns use the exact rules above.
_DEC_PAT = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_FRACTION_PAT = r"-?(?:0|[1-9][0-9]*)\.[0-9]+"
_BOOL_PAT = r"(?i:true|false|yes|no|t|f|y|n)"
#: A negative zero among newline-joined numbers: the database keeps it as plain zero.
NEGATIVE_ZERO = re.compile(r"(?:^|\n)-0(?:\.0*)?(?:\n|$)")


_FORMATS = FORMATS
_LENIENT_FORMATS = LENIENT_FORMATS


def _joined(pattern: str) -> re.Pattern[str]:
    """A regex matching non-empty values of `pattern` joined by newlines."""
    return re.compile(f"(?:{pattern})(?:\\n(?:{pattern}))*")


# Candidate ids: 0 integer, 1 decimal, 2 boolean, 3.. date formats (in _FORMATS order).
_INT, _DEC, _BOOL = 0, 1, 2
_CANDIDATE_RES: list[re.Pattern[str]] = [_joined(_INT_PAT), _joined(_FRACTION_PAT), _joined(_BOOL_PAT)] + [
    _joined(f.pattern) for f in _FORMATS
]
_ALL_CANDIDATES = tuple(range(len(_CANDIDATE_RES)))

# Single-value classification (used on samples, e.g. by header detection).
_ONE_INT = re.compile(_INT_PAT)
_ONE_DEC = re.compile(_DEC_PAT)
_ONE_BOOL = re.compile(_BOOL_PAT)
_ONE_DATE = [(re.compile(f.pattern), f) for f in _LENIENT_FORMATS]


@functools.cache
def _fixed_scale(scale: int) -> re.Pattern[str]:
    """Joined decimals that all have exactly `scale` digits after the point."""
    return _joined(rf"-?(?:0|[1-9][0-9]*)\.[0-9]{{{scale}}}")


@functools.cache
def _longer_int_part(digits: int) -> re.Pattern[str]:
    return re.compile(rf"\n-?[0-9]{{{digits + 1}}}")


def _digits(lo: int, hi: int) -> int:
    """Digits of the widest integer between `lo` and `hi` (the precision of a DECIMAL(p, 0))."""
    return max(len(str(abs(lo))), len(str(abs(hi))))


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
            if _CANDIDATE_RES[c].fullmatch(joined):
                if c > _BOOL and not self._feb29_ok(c, joined):
                    continue
                if c == _DEC and not self._same_scale(i, values[0], joined):
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
            # Grow the integer digits only when a value exceeds them: one C-level search each.
            digits = self._int_digits[i]
            while _longer_int_part(digits).search("\n" + joined):
                digits += 1
            self._int_digits[i] = digits
        if _BOOL in alive:
            self._bool_words[i].update(set(values))

    def _same_scale(self, i: int, first: str, joined: str) -> bool:
        """Whether every decimal has the column's number of decimals (set by its first value).

        A negative zero (``-0.00``) is no decimal either: the database stores it as ``0.00``.
        """
        if not self._scale[i]:
            self._scale[i] = len(first) - first.index(".") - 1
        return bool(_fixed_scale(self._scale[i]).fullmatch(joined)) and not NEGATIVE_ZERO.search(joined)

    @staticmethod
    def _feb29_ok(candidate: int, joined: str) -> bool:
        fmt = _FORMATS[candidate - 3]
        if not any(needle in joined for needle in fmt.feb29_needles):
            return True
        years = fmt.feb29.findall(joined)
        return not years or all(_leap(int(y)) for y in set(years))

    def _range_floor(self, i: int) -> int:
        """The fewest characters an integer needs to widen column `i`'s range so far."""
        # 10+ characters can leave int32, 19+ int64.
        lo, hi = self._int_min[i], self._int_max[i]
        if lo < _INT64[0] or hi > _INT64[1]:
            # Past 64 bits the precision is the most digits: a value longer than the widest so
            # far may have more (a fixed floor of 39 missed a 30-digit value in a later batch
            # than a 20-digit one, and the column got too narrow a DECIMAL).
            return _digits(lo, hi) + 1
        if lo < _INT32[0] or hi > _INT32[1]:
            return 19
        return 10

    def _track_int_range(self, i: int, values: list[str], longest: int) -> None:
        # Only values long enough to leave the current range matter.
        lo, hi = self._int_min[i], self._int_max[i]
        floor = self._range_floor(i)
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
            digits = _digits(lo, hi)
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
            pairs = {BOOLEAN_PAIRS.get(w) for w in words}
            if len(pairs) != 1 or None in pairs:
                return text  # spellings mixed (``yes`` beside ``True``): not written back as they were
            true, false = next(iter(pairs))  # type: ignore[misc]
            # A column of lone letters ("F", "Y") is only a flag when both truth values occur.
            if len(true) == 1 and not (true in words and false in words):
                return text
            return ColumnType(ColumnKind.BOOLEAN, length=length, true_text=true, false_text=false)
        formats = [_FORMATS[c - 3] for c in alive if c > _BOOL]
        chosen = self._pick_format(formats, proven)
        if chosen is None:
            return text
        return ColumnType(chosen.kind, length=length, date_format=chosen.strptime)

    def _pick_format(self, formats: list[DateFormat], proven: set[str]) -> DateFormat | None:
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


#: The format a date/datetime column is written in when nothing recorded says otherwise (a
#: table created outside the product): the ISO layout the databases give back.
DEFAULT_FORMATS = {ColumnKind.DATE: "%Y-%m-%d", ColumnKind.DATETIME: "%Y-%m-%d %H:%M:%S"}
_BY_STRPTIME = {f.strptime: f for f in _FORMATS}


def exact_pattern(column_type: ColumnType) -> str:
    """A regex (Python and RE2 alike) that a value must match whole to go into `column_type`
    exactly: the type writes the stored value back as this very text.

    Integers are further bounded by `fits_range`, dates by `calendar_ok`; TEXT takes anything.
    """
    kind = column_type.kind
    if kind is ColumnKind.INTEGER:
        return "0|-?[1-9][0-9]{0,9}"
    if kind is ColumnKind.BIGINT:
        return "0|-?[1-9][0-9]{0,18}"
    if kind is ColumnKind.DECIMAL:
        precision = column_type.precision or _MAX_PRECISION
        scale = min(column_type.scale, precision)
        digits = precision - scale
        if scale == 0:
            return f"0|-?[1-9][0-9]{{0,{max(digits - 1, 0)}}}"
        whole = f"(?:0|[1-9][0-9]{{0,{digits - 1}}})" if digits > 0 else "0"
        return f"-?{whole}\\.[0-9]{{{scale}}}"
    if kind is ColumnKind.BOOLEAN:
        true, false = column_type.true_text or "true", column_type.false_text or "false"
        return f"{re.escape(true)}|{re.escape(false)}"
    if kind in DEFAULT_FORMATS:
        fmt = _BY_STRPTIME.get(column_type.date_format or DEFAULT_FORMATS[kind])
        if fmt is None or fmt.kind is not kind:
            return "(?!)"  # a format no file of ours can be written in: nothing fits
        return fmt.pattern
    return "(?s:.*)"


def fits_range(column_type: ColumnType, value: str) -> bool:
    """Whether an integer-shaped `value` is within the column's range."""
    kind = column_type.kind
    if kind is ColumnKind.INTEGER:
        return len(value) < 10 or _INT32[0] <= int(value) <= _INT32[1]
    if kind is ColumnKind.BIGINT:
        return len(value) < 19 or _INT64[0] <= int(value) <= _INT64[1]
    return True


def calendar_ok(column_type: ColumnType, joined: str) -> bool:
    """Whether every 29 February among the newline-joined dates falls in a leap year."""
    fmt = _BY_STRPTIME.get(column_type.date_format or DEFAULT_FORMATS.get(column_type.kind, ""))
    if fmt is None or not any(needle in joined for needle in fmt.feb29_needles):
        return True
    return all(_leap(int(y)) for y in set(fmt.feb29.findall(joined)))


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


def prefer_declared(
    inferred: Sequence[ColumnType], declared: Sequence[ColumnType | None]
) -> tuple[ColumnType, ...]:
    """Column types under TYPE_POLICY=infer when the source declares some (a Parquet schema).

    A declared type wins over the one inferred from the values; the inferred length is kept
    (a declared text column is sized as an inferred one). Columns without a declared type, or
    past the end of `declared`, keep the inferred type.
    """
    out: list[ColumnType] = []
    for i, found in enumerate(inferred):
        wanted = declared[i] if i < len(declared) else None
        out.append(found if wanted is None else dataclasses.replace(wanted, length=found.length))
    return tuple(out)
