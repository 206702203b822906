"""Column types over Arrow string arrays: `TypeTracker`'s rules, run by pyarrow's kernels.

The CSV load's Arrow reader (`load/arrow_csv.py`) hands over each column as a string array of the
file's exact text. `ArrowTypeTracker.observe_arrow` updates the very state `TypeTracker.observe`
updates for the same values (so `result()` is shared, and rows and arrays may be mixed) without
turning every value into a Python object:

- A column already TEXT costs only its length: octets first, characters only of the values with
  more octets than the longest so far (as `load/measure.py`).
- A still-alive candidate is first tried on the batch's first few values in Python, with
  `types.py`'s own regular expressions: failing there is failing the batch, so a text column loses
  all its candidates without a pass over its values.
- The survivors are tested on every value by RE2 (`match_substring_regex`, anchored). The
  integer, decimal and date patterns are ASCII classes, literals, alternation and counted
  repeats, for which RE2's ``^(?:p)$`` and Python's ``fullmatch(p)`` accept the same strings;
  RE2's ``^``/``$`` anchor the whole value (no multi-line mode), so a value with a line break
  fails them all, as it does in `TypeTracker`.
- Booleans are case-insensitive, and Unicode case folding is engine-specific (Python folds
  the long s, U+017F, to ``s``): their distinct values, a handful in a boolean column, are looked at
  in Python with the tracker's own pattern.
- Dates are matched with `DateFormat.calendar`, which takes 29 February in leap years only.
- Only the values that can change a fact go to Python or to extra kernels: integers of 10
  characters and more for the range, decimals longer than their integer digits so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# The tracker's own candidate ids, patterns and bounds: this class is its columnar twin.
from backend.detection.types import (
    _BOOL,
    _CANDIDATE_RES,
    _DEC,
    _FORMATS,
    _INT,
    _INT_PAT,
    _ONE_BOOL,
    TypeTracker,
)

#: Values of a batch tried in Python before any candidate gets a pass over the whole batch.
SAMPLE_VALUES = 16
#: Distinct strings Python's case-insensitive boolean pattern accepts (``true`` to ``n`` in every
#: case, the long s U+017F for ``s`` included; counted over all of Unicode by a test): more
#: distinct values than this cannot all be boolean spellings.
BOOLEAN_SPELLINGS = 88


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


_INT_RE2 = _anchored(_INT_PAT)
_DATE_RE2 = [_anchored(f.calendar) for f in _FORMATS]


class ArrowTypeTracker(TypeTracker):
    """A `TypeTracker` that also takes batches of Arrow string arrays (`observe_arrow`)."""

    def observe_arrow(self, columns: Sequence[Any]) -> None:
        """Take a batch given as pyarrow string arrays (one per column, equal lengths).

        Empty strings and nulls are NULL. Columns past the tracker's count are ignored; a batch
        with fewer columns leaves the missing ones NULL.
        """
        self._flush()
        if not columns:
            return
        self._rows_seen += len(columns[0])
        for i, column in enumerate(columns[: self._n]):
            self._take_arrow(i, column)

    def _take_arrow(self, i: int, column: Any) -> None:
        octets = pc.binary_length(column)
        most = pc.max(octets).as_py()
        if not most:
            return  # every value NULL: nothing decides
        self._seen[i] = True
        if most > self._max_len[i]:
            # A value has at most as many characters as octets: only longer ones are counted.
            longer = pc.filter(column, pc.greater(octets, self._max_len[i]))
            self._max_len[i] = max(self._max_len[i], pc.max(pc.utf8_length(longer)).as_py())
        if not self._candidates[i]:
            return
        filled = pc.greater(octets, 0)
        if pc.all(filled).as_py() and not column.null_count:
            values = column
        else:
            values, octets = pc.filter(column, filled), pc.filter(octets, filled)
        self._check_arrow(i, values, octets)

    def _check_arrow(self, i: int, values: Any, octets: Any) -> None:
        """`TypeTracker._check` over the batch's non-NULL values."""
        sample = values.slice(0, SAMPLE_VALUES).to_pylist()
        joined = "\n".join(sample)
        if joined.count("\n") != len(sample) - 1:
            self._candidates[i] = []  # a line break: no typed pattern allows one
            return
        alive: list[int] = []
        for c in self._candidates[i]:
            if not _CANDIDATE_RES[c].fullmatch(joined):
                continue
            if c == _INT:
                ok = self._ints(i, values, octets)
            elif c == _DEC:
                ok = self._decimals(i, values, octets, sample[0])
            elif c == _BOOL:
                ok = self._booleans(i, values)
            else:
                ok = self._dates(c, values)
            if ok:
                alive.append(c)
        self._candidates[i] = alive

    def _ints(self, i: int, values: Any, octets: Any) -> bool:
        if not _all_match(values, _INT_RE2):
            return False
        # As `_track_int_range`: only values long enough to leave the current range matter.
        lo, hi = self._int_min[i], self._int_max[i]
        floor = self._range_floor(i)
        long = pc.greater_equal(octets, floor)
        if not pc.any(long).as_py():
            return True
        wide = pc.filter(values, long)
        wide_octets = pc.filter(octets, long)
        # Up to 18 characters an integer fits int64: Arrow parses those; longer ones Python does.
        short = pc.less(wide_octets, 19)
        fitting = pc.cast(pc.filter(wide, short), pa.int64())
        ints = [int(v) for v in pc.filter(wide, pc.invert(short)).to_pylist()]
        if len(fitting):
            extremes = pc.min_max(fitting)
            ints += [extremes["min"].as_py(), extremes["max"].as_py()]
        self._int_min[i] = min(lo, *ints)
        self._int_max[i] = max(hi, *ints)
        return True

    def _decimals(self, i: int, values: Any, octets: Any, first: str) -> bool:
        # The first value passed the fraction pattern, so it has a point (see `_check_arrow`).
        if not self._scale[i]:
            self._scale[i] = len(first) - first.index(".") - 1
        scale = self._scale[i]
        pattern = _anchored(rf"-?(?:0|[1-9][0-9]*)\.[0-9]{{{scale}}}")
        if not _all_match(values, pattern):
            return False
        # With the scale fixed, the only negative zero left is -0.00...0 (`NEGATIVE_ZERO`).
        if pc.any(pc.equal(values, "-0." + "0" * scale)).as_py():
            return False
        # Integer digits grow only through a value longer than sign, digits so far, point, scale.
        digits = self._int_digits[i]
        longer = pc.greater(octets, digits + scale + 1)
        if pc.any(longer).as_py():
            wide = pc.filter(values, longer)
            found = pc.subtract(pc.find_substring(wide, "."), pc.cast(pc.starts_with(wide, "-"), pa.int32()))
            self._int_digits[i] = max(digits, pc.max(found).as_py())
        return True

    def _booleans(self, i: int, values: Any) -> bool:
        words = pc.unique(values)
        if len(words) > BOOLEAN_SPELLINGS:
            return False
        found = words.to_pylist()
        # One value's pattern (the joined one would take ``true\nfalse`` as two values).
        if not all(_ONE_BOOL.fullmatch(w) for w in found):
            return False
        self._bool_words[i].update(found)
        return True

    def _dates(self, c: int, values: Any) -> bool:
        # The calendar pattern takes 29 February in leap years only: one pass decides what the
        # shape and the tracker's leap-year look at every 29 February decide.
        return _all_match(values, _DATE_RE2[c - 3])


def _all_match(values: Any, pattern: str) -> bool:
    return bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())
