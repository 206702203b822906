"""The load profile: what a file contained, per column, gathered while it streams into staging.

How (and why this way): `ProfileObserver` sits in the staging loop as the row observer (it wraps
the type tracker when TYPE_POLICY=infer). Rows are buffered and every few thousand rows the
buffer is transposed once and each column is summarised with C-level builtins (count, min, max,
set, Counter, float): the file is read once, memory stays bounded by the batch plus a few
thousand sampled values per column, and no extra query runs over the staging table. SQL
aggregates over the staging table were measured first and cost ~20 s per 1M rows x 12 columns
on SQLite (COUNT(DISTINCT) alone 13 s), against ~2-3 s for this observer.

Big files are profiled from a sample: every row of the first `EXACT_ROWS` rows, then one row
in `SAMPLE_EVERY`. Summarising every row cost a quarter of a large load's time (benchmark,
bench/RESULTS.md); a reference-data table is usually under the limit and keeps exact figures.
Row and NULL counts stay exact (they are cheap); min/max, distinct counts, frequent values and
the numeric statistics of a sampled profile are marked ``from_sample`` (and its distinct counts
approximate), so nothing downstream mistakes them for exact figures (validation only skips a
query on exact ones).

Per column: the type the table got (and what a TEXT column's values look like), NULL count,
distinct count (exact up to 4,096 distinct values, then a k-minimum-values estimate, typically
within 3 %, flagged ``distinct_approximate``), min/max (numeric for numbers, text order otherwise,
year-first dates only), mean and standard deviation for numbers, the most frequent values of
columns with at most 20 distinct values, the longest value, and a pattern for code-like columns
(``AAA``, ``999-AAA``; letters A/a, digits 9) when one shape covers 95 % of the sampled values.
Columns that look like personal or payment data are flagged (see `sensitive`) and their values
(min, max, frequent values, pattern) are left out of the profile: the tracking table must not
become a copy of them.

The profile also carries a structural fingerprint (normalised names and kinds) and the previous
successful load's fingerprint, so a change of structure shows in ``history``.
"""

from __future__ import annotations

import heapq
import math
import operator
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

from backend.load.stage import TypeObserver
from backend.models import ColumnKind, ColumnType

#: Rows buffered before a batch is summarised.
BATCH_ROWS = 4096
#: Every row up to here is summarised; beyond it, one row in SAMPLE_EVERY.
EXACT_ROWS = 20_000
SAMPLE_EVERY = 10
#: Non-empty values kept per column for patterns, sensitive data and type hints.
SAMPLE_VALUES = 5000
#: Distinct hashes kept per column; beyond twice this the distinct count is an estimate.
DISTINCT_EXACT = 2048
#: Wide files get smaller samples and sketches, so the observer's memory stays bounded
#: (about this many sampled values and kept hashes over all columns).
TOTAL_SAMPLE_VALUES = 250_000
TOTAL_HASHES = 500_000
#: Columns with at most this many distinct values list their most frequent values.
LOW_CARDINALITY = 20
TOP_VALUES = 5
#: A pattern is reported when one shape covers this share of the sampled values.
PATTERN_SHARE = 0.95
PATTERN_MAX_LENGTH = 40
#: Text values in the profile are cut to this many characters.
VALUE_CHARS = 64

NUMERIC_KINDS = (ColumnKind.INTEGER, ColumnKind.BIGINT, ColumnKind.DECIMAL)
_HASH_SPAN = float(1 << 64)
_HASH_MIN = -(1 << 63)
SHAPES = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "A" * 26 + "a" * 26 + "9" * 10,
)


class ColumnStats:
    """Running statistics of one column."""

    __slots__ = (
        "counter",
        "empty",
        "hashes",
        "k",
        "max_text",
        "min_text",
        "n",
        "num_max",
        "num_min",
        "numeric",
        "present",
        "room",
        "s1",
        "s2",
        "sample",
        "shift",
        "threshold",
    )

    def __init__(self, k: int = DISTINCT_EXACT, sample_values: int = SAMPLE_VALUES) -> None:
        self.k = k
        self.room = sample_values
        self.empty = 0
        self.hashes: set[int] = set()
        self.threshold: int | None = None
        self.counter: Counter[str] | None = Counter()
        self.min_text: str | None = None
        self.max_text: str | None = None
        self.numeric = True
        self.shift: float | None = None
        self.n = 0
        self.present = 0
        self.s1 = 0.0
        self.s2 = 0.0
        self.num_min = math.inf
        self.num_max = -math.inf
        self.sample: list[str] = []

    def count_empty(self, column: tuple[str, ...]) -> None:
        """Only the NULL count, for batches left out of the sample."""
        self.empty += column.count("")

    def add(self, column: tuple[str, ...], weight: int = 1, *, count_empty: bool = True) -> None:
        """Summarise values that each stand for `weight` values (the sampling rate past EXACT_ROWS)."""
        empty = column.count("")
        if count_empty:
            self.empty += empty
        values: Sequence[str] = list(filter(None, column)) if empty else column
        if not values:
            return
        self.present += len(values)
        low, high = min(values), max(values)
        if self.min_text is None or low < self.min_text:
            self.min_text = low
        if self.max_text is None or high > self.max_text:
            self.max_text = high
        distinct = set(values)
        self._add_hashes(distinct)
        if self.counter is not None:
            if len(distinct) > LOW_CARDINALITY or len(self.counter) > LOW_CARDINALITY:
                self.counter = None
            else:
                counts = Counter(values)
                if weight != 1:
                    for value in counts:
                        counts[value] *= weight
                self.counter.update(counts)
        if self.numeric:
            self._add_numbers(values, weight)
        room = self.room - len(self.sample)
        if room > 0:
            self.sample.extend(values[:room])

    def _add_hashes(self, distinct: set[str]) -> None:
        # k minimum values: uniform hashes below the k-th smallest estimate the distinct count.
        hashes = map(hash, distinct)
        if self.threshold is None:
            self.hashes.update(hashes)
        else:
            self.hashes.update(filter(self.threshold.__ge__, hashes))
        if len(self.hashes) > 2 * self.k:
            kept = heapq.nsmallest(self.k, self.hashes)
            self.threshold = kept[-1]
            self.hashes = set(kept)

    def _add_numbers(self, values: Sequence[str], weight: int = 1) -> bool:
        """Add a batch to the numeric statistics; False (and stop trying) once a value is not a number."""
        try:
            numbers = list(map(float, values))
        except ValueError:
            self.numeric = False
            return False
        if self.shift is None:
            self.shift = numbers[0]
        # Sums shifted by the first value keep the variance accurate when values are large and
        # close together (the textbook sum-of-squares formula cancels catastrophically there).
        shifted = list(map(operator.sub, numbers, repeat(self.shift, len(numbers))))
        s1 = sum(shifted)
        s2 = sum(map(operator.mul, shifted, shifted))
        if not (math.isfinite(s1) and math.isfinite(s2)):
            self.numeric = False  # nan / inf spelled out in the file: not a number column
            return False
        self.n += weight * len(numbers)
        self.s1 += weight * s1
        self.s2 += weight * s2
        self.num_min = min(self.num_min, min(numbers))
        self.num_max = max(self.num_max, max(numbers))
        return True

    def distinct(self) -> tuple[int, bool]:
        """(distinct count, whether it is an estimate)."""
        if self.threshold is None:
            return len(self.hashes), False
        kth = heapq.nsmallest(self.k, self.hashes)[-1]
        fraction = (kth - _HASH_MIN + 1) / _HASH_SPAN
        return round((self.k - 1) / fraction), True


class ProfileObserver:
    """Row observer for `stage_records`: feeds the type tracker (if any) and gathers statistics.

    Args:
        width: number of columns.
        inner: the type tracker under TYPE_POLICY=infer; without one, `result` answers TEXT for
            every column (the staging loop then sizes them from the values, as without observer).
    """

    def __init__(
        self,
        width: int,
        inner: TypeObserver | None = None,
        *,
        exact_rows: int = EXACT_ROWS,
        sample_every: int = SAMPLE_EVERY,
        count_empty: bool = True,
    ) -> None:
        self._inner = inner
        self._exact_rows = exact_rows
        self._sample_every = max(1, sample_every)
        # False when the caller counts empty cells itself (the loader, in the staging table) and
        # hands them to `build_profile`: rows left out of the sample then need no transposition.
        self._count_empty = count_empty
        # Seeded: the same file gives the same profile. Not for secrets.
        self._random = random.Random(EXACT_ROWS)  # noqa: S311
        self._inner_observe = inner.observe if inner is not None else None
        # The type tracker can take the transposed batch as it is (no second transposition).
        self._inner_columns = getattr(inner, "observe_columns", None)
        self._rows: list[list[str]] = []
        k = max(256, min(DISTINCT_EXACT, TOTAL_HASHES // max(1, width)))
        sample = max(500, min(SAMPLE_VALUES, TOTAL_SAMPLE_VALUES // max(1, width)))
        self.columns = [ColumnStats(k, sample) for _ in range(width)]
        self.width = width
        self.rows = 0
        self.sampled_rows = 0
        self.seconds = 0.0

    def observe(self, values: list[str]) -> None:
        if self._inner_observe is not None:
            self._inner_observe(values)
        rows = self._rows
        rows.append(values)
        if len(rows) >= BATCH_ROWS:
            self.flush()

    def observe_batch(self, rows: list[list[str]]) -> None:
        """Take one staged batch at once (rows of exactly `width` values)."""
        columns: list[tuple[str, ...]] | None = None
        if self._inner_columns is not None:
            columns = list(zip(*rows, strict=True))
            self._inner_columns(columns)
        elif self._inner_observe is not None:
            inner = self._inner_observe
            for values in rows:
                inner(values)
        self.flush()
        started = time.perf_counter()
        self._summarise(rows, columns)
        self.seconds += time.perf_counter() - started

    def observe_arrow(self, arrays: Sequence[Any]) -> None:
        """Take one staged batch as Arrow string arrays: only the rows the statistics look at
        (the first `exact_rows`, then the sample) become Python values, with the same random
        draws as `observe_batch`, so both give the same profile for the same batches."""
        if self._inner is not None or self._count_empty:
            cells = [a.to_numpy(zero_copy_only=False).tolist() for a in arrays]
            self.observe_batch([list(row) for row in zip(*cells, strict=True)])
            return
        import pyarrow as pa

        self.flush()
        started = time.perf_counter()
        n = len(arrays[0]) if arrays else 0
        exact = self.rows < self._exact_rows
        self.rows += n
        if exact:
            self.sampled_rows += n
            for column, array in zip(self.columns, arrays, strict=True):
                column.add(tuple(array.to_numpy(zero_copy_only=False).tolist()))
        else:
            every = self._sample_every
            k = n // every
            picked = sorted(self._random.sample(range(n), k)) if k > 1 else []
            self.sampled_rows += len(picked)
            if picked:
                taken = pa.array(picked, pa.int64())
                for column, array in zip(self.columns, arrays, strict=True):
                    column.add(
                        tuple(array.take(taken).to_numpy(zero_copy_only=False).tolist()),
                        every,
                        count_empty=False,
                    )
        self.seconds += time.perf_counter() - started

    @property
    def counts_empty(self) -> bool:
        """Whether NULL counts cover every row (else `build_profile` needs them from the caller)."""
        return self._count_empty or not self.sampled

    @property
    def sampled(self) -> bool:
        """Whether some rows were left out of the statistics (row and NULL counts stay exact)."""
        return self.sampled_rows < self.rows

    def _summarise(self, rows: list[list[str]], columns: list[tuple[str, ...]] | None = None) -> None:
        """Summarise `rows` (`columns`, when given, is the same batch transposed)."""
        n = len(rows)
        exact = self.rows < self._exact_rows
        self.rows += n
        if exact:
            self.sampled_rows += n
            for column, cells in zip(self.columns, columns or zip(*rows, strict=True), strict=True):
                column.add(cells)
            return
        every = self._sample_every
        # A simple random sample of the batch (each row standing for `every` rows): a stride
        # aliases with periodic data (every 10th row of an A-E cycle is always the same letter).
        k = n // every
        picked = sorted(self._random.sample(range(n), k)) if k > 1 else []
        self.sampled_rows += len(picked)
        if picked:
            # Only the sampled rows are transposed when the batch does not come transposed.
            if columns is None:
                sample: Iterable[tuple[str, ...]] = zip(*operator.itemgetter(*picked)(rows), strict=True)
            else:
                pick = operator.itemgetter(*picked)
                sample = map(pick, columns)
            for column, cells in zip(self.columns, sample, strict=True):
                column.add(cells, every, count_empty=False)
        if self._count_empty:
            for column, cells in zip(self.columns, columns or zip(*rows, strict=True), strict=True):
                column.count_empty(cells)

    def result(self) -> tuple[ColumnType, ...]:
        self.flush()
        if self._inner is not None:
            return self._inner.result()
        return tuple(ColumnType() for _ in range(self.width))

    def flush(self) -> None:
        """Summarise the rows buffered so far."""
        rows = self._rows
        if not rows:
            return
        started = time.perf_counter()
        self._rows = []
        # The staging loop hands over rows of exactly `width` values (ragged ones are fixed first).
        self._summarise(rows)
        self.seconds += time.perf_counter() - started
