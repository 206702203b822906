"""Column types over Arrow string arrays: the same decisions as `TypeTracker` over the same rows."""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.detection.arrow_types import BOOLEAN_SPELLINGS, ArrowTypeTracker
from backend.detection.dates import FORMATS, DateFormat
from backend.detection.types import _BOOL_PAT, BOOLEAN_PAIRS, TypeTracker
from backend.models import ColumnKind, ColumnType
from tests.detection.test_types import CLEAN_COLUMNS, DOUBTFUL_COLUMNS

Column = Sequence[str | None]


def by_rows(columns: Sequence[Column], *, date_order: str = "auto") -> tuple[ColumnType, ...]:
    """The reference: every row through `TypeTracker.observe`."""
    tracker = TypeTracker(len(columns), date_order=date_order)
    for row in zip(*columns, strict=True):
        tracker.observe(list(row))
    return tracker.result()


def by_arrow(
    columns: Sequence[Column],
    cuts: Sequence[int] = (),
    *,
    date_order: str = "auto",
    modes: Sequence[str] = (),
) -> tuple[ColumnType, ...]:
    """The batches between `cuts` through `observe_arrow` (as arrays, or as chunked arrays, or as
    rows through `observe`, by `modes`, cycled)."""
    tracker = ArrowTypeTracker(len(columns), date_order=date_order)
    count = len(columns[0])
    bounds = [0, *sorted({c for c in cuts if 0 < c < count}), count]
    for n, (start, end) in enumerate(itertools.pairwise(bounds)):
        mode = modes[n % len(modes)] if modes else "array"
        part = [list(column[start:end]) for column in columns]
        if mode == "rows":
            for row in zip(*part, strict=True):
                tracker.observe(row)
            continue
        arrays = [pa.array(values, type=pa.string()) for values in part]
        if mode == "chunked":
            half = (end - start) // 2
            arrays = [pa.chunked_array([a.slice(0, half), a.slice(half)]) for a in arrays]
        tracker.observe_arrow(arrays)
    return tracker.result()


def one(values: Column, cuts: Sequence[int] = (), **kwargs: str) -> ColumnType:
    return by_arrow([values], cuts, **kwargs)[0]


# --------------------------------------------------------------------------------- strategies
_BOUNDS = [10**9, 2**31, 10**18, 2**63, 10**37, 10**38]


def _of_digits(low: int, high: int) -> st.SearchStrategy[int]:
    """Non-negative integers of `low` to `high` digits, each length as likely."""
    return st.integers(low, high).flatmap(lambda k: st.integers(10 ** (k - 1) if k > 1 else 0, 10**k - 1))


_signs = st.sampled_from([1, -1])
#: Near the int32, int64 and 38-digit edges, and wide: which batch holds the widest matters.
_wide_integers = st.one_of(
    st.tuples(st.sampled_from(_BOUNDS), st.integers(-3, 3), _signs).map(lambda t: t[2] * (t[0] + t[1])),
    st.tuples(_of_digits(9, 40), _signs).map(lambda t: t[0] * t[1]),
).map(str)
_integers = st.one_of(st.integers(-1000, 1000).map(str), _wide_integers, _wide_integers)
_ODD_NUMBERS = ["-0", "007", "00", "+5", "1e5", "1,234", "3,14", " 1", "1 ", "-", "1.", ".5", "-.5"]
_ODD_NUMBERS += ["١٢", "１２", "0x1F", "--1", "1-"]


def _decimals(scale: int) -> st.SearchStrategy[str]:
    whole = st.one_of(_of_digits(1, 6), _of_digits(1, 6), _of_digits(30, 40))
    fraction = st.integers(0, 10**scale - 1).map(lambda f: f"{f:0{scale}d}")
    return st.builds(lambda sign, w, f: f"{sign}{w}.{f}", st.sampled_from(["", "-"]), whole, fraction)


_ODD_DECIMALS = ["-0.00", "-0.0", "0.00", "-0.000", "0.0", "-0.5", "1.5e3", "1.50 "]
_BOOLEANS = [*sorted(BOOLEAN_PAIRS), "tRue", "TRue", "falſe", "Yes", "YES", "nO", "yes\nno", "oui", "1", "0"]
_YEARS = st.one_of(
    st.sampled_from([0, 4, 100, 400, 1600, 1900, 1996, 2000, 2023, 2024, 2100, 9999]), st.integers(0, 9999)
)
_MONTH_DAY = st.one_of(
    st.tuples(st.integers(1, 12), st.integers(1, 12)),  # fits both orders
    st.tuples(st.integers(1, 12), st.integers(1, 28)),
    st.tuples(st.sampled_from([1, 3, 5, 7, 8, 10, 12]), st.integers(29, 31)),
    st.tuples(st.sampled_from([4, 6, 9, 11]), st.integers(29, 30)),
)
_ODD_MONTH_DAY = st.one_of(
    st.just((2, 29)),  # a leap day, or none
    st.just((2, 29)),
    st.tuples(st.sampled_from([0, 2, 4, 13]), st.sampled_from([0, 29, 30, 31, 32])),
)
_TIMES = st.tuples(
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.integers(0, 999999).map(lambda f: f"{f:06d}"),
)
_ODD_TIMES = st.tuples(
    st.sampled_from([0, 23, 24]),
    st.sampled_from([0, 59, 60]),
    st.sampled_from([0, 59, 61]),
    st.sampled_from(["000000", "5", "12345", "1234567"]),
)


def _date_text(
    fmt: DateFormat, year: int, month_day: tuple[int, int], time: tuple[int, int, int, str], pad: bool
) -> str:
    sep = next(c for c in fmt.strptime if c in "-/.")
    month, day = month_day
    m, d = (f"{month:02d}", f"{day:02d}") if pad else (str(month), str(day))
    y = f"{year:04d}"
    text = {"ymd": f"{y}{sep}{m}{sep}{d}", "dmy": f"{d}{sep}{m}{sep}{y}", "mdy": f"{m}{sep}{d}{sep}{y}"}[
        fmt.order
    ]
    if fmt.kind is ColumnKind.DATETIME:
        joiner = "T" if "T" in fmt.strptime else " "
        hh, mi, ss, fraction = time
        clock = {"%H:%M": f"{hh:02d}:{mi:02d}", "%H:%M:%S": f"{hh:02d}:{mi:02d}:{ss:02d}"}
        clock["%H:%M:%S.%f"] = f"{hh:02d}:{mi:02d}:{ss:02d}.{fraction}"
        text += joiner + clock[fmt.strptime.split(joiner, 1)[1]]
    return text


def _dates(fmt: DateFormat, *, odd: bool = False) -> st.SearchStrategy[str]:
    """Valid dates of `fmt`, or (`odd`) one thing wrong: a leap day (maybe in a common year), an
    impossible day or time, unpadded numbers."""
    if not odd:
        return st.builds(lambda y, md, t: _date_text(fmt, y, md, t, True), _YEARS, _MONTH_DAY, _TIMES)
    return st.one_of(
        st.builds(lambda y, md, t: _date_text(fmt, y, md, t, True), _YEARS, _ODD_MONTH_DAY, _TIMES),
        st.builds(lambda y, md, t: _date_text(fmt, y, md, t, True), _YEARS, _MONTH_DAY, _ODD_TIMES),
        st.builds(lambda y, md, t: _date_text(fmt, y, md, t, False), _YEARS, _MONTH_DAY, _TIMES),
    )


def _leap_days(fmt: DateFormat) -> st.SearchStrategy[str]:
    """29 February of `fmt`, in leap years and common ones, centuries included."""
    years = st.sampled_from([0, 4, 100, 400, 1600, 1700, 1900, 1996, 1999, 2000, 2023, 2024, 2100])
    return st.builds(lambda y, t: _date_text(fmt, y, (2, 29), t, True), years, _TIMES)


_texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(list('ab1-.:/ T\nNA\r"é😀𝔘\u00a0ſ0٣')), st.characters(blacklist_categories=("Cs",))
    ),
    max_size=8,
)
_any_value = st.one_of(
    _integers,
    st.sampled_from(_ODD_NUMBERS + _ODD_DECIMALS + _BOOLEANS),
    st.integers(1, 4).flatmap(_decimals),
    st.sampled_from(FORMATS).flatmap(_dates),
    _texts,
)


@st.composite
def _column(draw: st.DrawFn, rows: int) -> list[str | None]:
    """Values of one family (so that typed columns are common) and NULLs, then maybe a few
    values near the family (a leading zero, another scale, a leap day...) or of any kind."""
    family = draw(st.sampled_from(["int", "wide", "decimal", "decimal", "boolean", "date", "date", "text"]))
    if family == "int":
        main, near = _integers, st.sampled_from(_ODD_NUMBERS)
    elif family == "wide":
        main, near = _wide_integers, st.one_of(st.sampled_from(_ODD_NUMBERS), _integers)
    elif family == "decimal":
        main = _decimals(draw(st.integers(1, 4)))
        near = st.one_of(st.sampled_from(_ODD_DECIMALS), st.integers(1, 4).flatmap(_decimals), _integers)
    elif family == "boolean":
        pair = draw(st.sampled_from(sorted(set(BOOLEAN_PAIRS.values()))))
        main = st.sampled_from(draw(st.sampled_from([pair, pair[:1], pair[1:]])))
        near = st.sampled_from(_BOOLEANS)
    elif family == "date":
        fmt = draw(st.sampled_from(FORMATS))
        main, near = _dates(fmt), st.one_of(_leap_days(fmt), _leap_days(fmt), _dates(fmt, odd=True))
    else:
        main, near = _texts, _any_value
    nulls = st.sampled_from(["", None])
    values = draw(st.lists(st.one_of(main, main, main, nulls), min_size=rows, max_size=rows))
    # The first misfit is near the family (the one a rule has to catch by itself), a second one
    # may be anything.
    for n in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        at = draw(st.one_of(st.just(rows - 1), st.integers(0, rows - 1)))
        values[at] = draw(near if n == 0 else st.one_of(near, _any_value))
    return values


@st.composite
def _tables(draw: st.DrawFn) -> tuple[list[list[str | None]], list[int]]:
    rows = draw(st.integers(1, 40))
    columns = [draw(_column(rows)) for _ in range(draw(st.integers(1, 4)))]
    cuts = draw(st.lists(st.integers(0, rows), max_size=6))
    return columns, cuts


# -------------------------------------------------------------------------------------- tests
class TestObserveArrowProperty:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        table=_tables(),
        date_order=st.sampled_from(["auto", "dmy", "mdy", "ymd"]),
        modes=st.lists(st.sampled_from(["array", "array", "chunked", "rows"]), max_size=3),
    )
    def test_any_batch_split_decides_what_rows_decide(self, table, date_order, modes) -> None:
        """Whatever the values and however the batches are cut, Arrow batches decide the types
        (kind, length, precision, scale, format, spelling) rows one by one decide."""
        columns, cuts = table
        assert by_arrow(columns, cuts, date_order=date_order, modes=modes) == by_rows(
            columns, date_order=date_order
        )


class TestObserveArrow:
    @pytest.mark.parametrize(("values", "kind"), CLEAN_COLUMNS)
    def test_clean_columns_get_their_type(self, values: list[str], kind: ColumnKind) -> None:
        """A column whose every value fits a type gets that type, in one batch or one per value."""
        assert one(values).kind is kind
        assert one(values, range(len(values))).kind is kind

    @pytest.mark.parametrize("values", DOUBTFUL_COLUMNS)
    def test_doubtful_columns_stay_text(self, values: list[str]) -> None:
        """Leading zeros, signs, separators, impossible dates and any misfit keep a column text,
        in one batch or one per value."""
        assert one(values).kind is ColumnKind.TEXT
        assert one(values, range(len(values))).kind is ColumnKind.TEXT

    def test_a_misfit_in_the_last_row_of_the_last_batch_keeps_text(self) -> None:
        """A column numeric except in its very last row stays text."""
        values = [str(i) for i in range(10000)] + ["NA"]
        assert one(values, [4096, 8192]).kind is ColumnKind.TEXT
        assert one(values[:-1], [4096, 8192]).kind is ColumnKind.INTEGER

    def test_length_counts_characters(self) -> None:
        """Lengths are in characters (code points), astral ones included, as `len` counts them."""
        column = one(["é", "😀𝔘x", "ab"], [1])
        assert (column.kind, column.length) == (ColumnKind.TEXT, 3)

    def test_text_columns_keep_measuring(self) -> None:
        """A column already text still reports its longest value of any later batch."""
        assert one(["abc", "x" * 50, "é" * 70], [1, 2]).length == 70

    def test_nulls_and_empty_strings_decide_nothing(self) -> None:
        """NULL and the empty string are both NULL; a column of them only is text of length 0."""
        assert one([None, "", "5", None], [1]).kind is ColumnKind.INTEGER
        assert one([None, ""], [1]) == ColumnType(ColumnKind.TEXT, length=0)

    @pytest.mark.parametrize(
        ("values", "kind", "precision"),
        [
            (["2147483647", "-2147483648", "1"], ColumnKind.INTEGER, 0),
            (["1", "2147483648"], ColumnKind.BIGINT, 0),
            (["1", "-2147483649"], ColumnKind.BIGINT, 0),
            (["9223372036854775807", "-9223372036854775808"], ColumnKind.BIGINT, 0),
            (["5", "9223372036854775808"], ColumnKind.DECIMAL, 19),
            (["2147483648", "9223372036854775808"], ColumnKind.DECIMAL, 19),
            (["-2147483649", "-9223372036854775809"], ColumnKind.DECIMAL, 19),
            (["-9223372036854775809", "5"], ColumnKind.DECIMAL, 19),
            (["1" * 20, "5", "1" * 30], ColumnKind.DECIMAL, 30),
            (["9" * 38, "-" + "9" * 38], ColumnKind.DECIMAL, 38),
            (["1", "1" * 39], ColumnKind.TEXT, 0),
        ],
    )
    def test_integer_ranges(self, values: list[str], kind: ColumnKind, precision: int) -> None:
        """32-bit, 64-bit, up to 38 digits, longer: whichever batch holds the widest value."""
        for cuts in ([], [1], [1, 2]):
            column = one(values, cuts)
            assert (column.kind, column.precision) == (kind, precision)

    def test_decimal_scale_is_shared_across_batches(self) -> None:
        """A scale set by the first batch must hold in every later one."""
        assert one(["1.50", "2.25", "3.5"], [2]).kind is ColumnKind.TEXT
        column = one(["1.50", "-2.25", "-123.45", "9.99"], [1, 2])
        assert (column.kind, column.precision, column.scale) == (ColumnKind.DECIMAL, 5, 2)

    @pytest.mark.parametrize(
        ("values", "precision"),
        [(["1.50", "12.50"], 4), (["-1.50", "12.50"], 4), (["12.50", "-123.50"], 5), (["99.5", "-9.5"], 3)],
    )
    def test_decimal_precision_grows_with_a_later_batch(self, values: list[str], precision: int) -> None:
        """An integer part one digit wider than any before it, in a later batch, widens the precision."""
        assert one(values, [1]).precision == precision

    @pytest.mark.parametrize("zero", ["-0.00", "-0"])
    def test_negative_zero_keeps_text(self, zero: str) -> None:
        """A negative zero would come back without its sign."""
        assert one(["1.25", "2.50", zero], [2]).kind is ColumnKind.TEXT
        assert one(["1", "2", zero], [2]).kind is ColumnKind.TEXT

    def test_decimal_precision_past_38_is_text(self) -> None:
        """Integer digits plus scale above 38 keep a decimal column text."""
        assert one(["1.00", "9" * 37 + ".00"], [1]).kind is ColumnKind.TEXT
        assert one(["1.00", "9" * 36 + ".00"], [1]).precision == 38

    @pytest.mark.parametrize(("true", "false"), sorted(set(BOOLEAN_PAIRS.values())))
    def test_every_boolean_spelling_pair(self, true: str, false: str) -> None:
        """Each spelling pair makes a boolean column that records its spelling."""
        column = one([true, false, true, ""], [1])
        assert (column.kind, column.true_text, column.false_text) == (ColumnKind.BOOLEAN, true, false)

    def test_lone_letters_need_both_values(self) -> None:
        """A column of one lone letter is no flag; words are."""
        assert one(["F", "F", "F"], [1]).kind is ColumnKind.TEXT
        assert one(["Y", "N"], [1]).kind is ColumnKind.BOOLEAN
        assert one(["yes", "yes"], [1]).kind is ColumnKind.BOOLEAN

    @pytest.mark.parametrize(
        "values",
        [["true", "false", "True"], ["yes", "true"], ["true", "falſe"], ["true", "true\nfalse"]],
        ids=["two-cases", "two-pairs", "long-s", "line-break"],
    )
    def test_boolean_misfits_across_batches(self, values: list[str]) -> None:
        """Spellings mixed over batches, look-alike letters and line breaks keep text."""
        assert one(values, [1]).kind is ColumnKind.TEXT

    @pytest.mark.parametrize(
        ("values", "kind"),
        [
            (["2024-02-29", "2000-02-29"], ColumnKind.DATE),
            (["2024-01-01", "2023-02-29"], ColumnKind.TEXT),
            (["2024-01-01", "1900-02-29"], ColumnKind.TEXT),
            (["2024-01-01T00:00:00", "2023-02-29T10:00:00"], ColumnKind.TEXT),
            (["29/02/2024", "01/01/2023"], ColumnKind.DATE),
            (["01/01/2023", "29/02/2100"], ColumnKind.TEXT),
            (["2024-01-31 10:00:00.123456", "2024-01-31 10:00:00.000000"], ColumnKind.DATETIME),
            (["2024-01-31 10:00:00.123456", "2024-01-31 10:00:00.12345"], ColumnKind.TEXT),
        ],
    )
    def test_dates_and_leap_days(self, values: list[str], kind: ColumnKind) -> None:
        """29 February needs a leap year in every batch; fractions have exactly six digits."""
        assert one(values, [1]).kind is kind

    def test_an_order_proven_by_another_column(self) -> None:
        """A column proving day-first settles an ambiguous column, even from another batch."""
        columns = [["01/02/2024", "03/04/2024", "05/06/2024"], ["01/02/2024", "03/04/2024", "25/12/2024"]]
        assert [t.date_format for t in by_arrow(columns, [2])] == ["%d/%m/%Y", "%d/%m/%Y"]
        assert [t.kind for t in by_arrow([columns[0]], [2])] == [ColumnKind.TEXT]
        assert by_arrow([columns[0]], [2], date_order="mdy")[0].date_format == "%m/%d/%Y"

    def test_a_line_break_keeps_text(self) -> None:
        """A value holding a line break keeps any column text."""
        assert one(["1", "2", "3\n4"], [1]).kind is ColumnKind.TEXT
        assert one(["2024-01-01", "2024-01-02\n"], [1]).kind is ColumnKind.TEXT

    def test_text_columns_cost_only_their_length(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Once a column is text, later batches run no pattern over it."""
        calls: list[str] = []
        original = pc.match_substring_regex

        def counted(values, pattern, *args, **kwargs):
            calls.append(pattern)
            return original(values, pattern, *args, **kwargs)

        tracker = ArrowTypeTracker(1)
        tracker.observe_arrow([pa.array(["12", "13", "x"])])  # the first values pass, x does not
        monkeypatch.setattr(pc, "match_substring_regex", counted)
        monkeypatch.setattr(pc, "unique", lambda *a, **k: pytest.fail("unique on a text column"))
        tracker.observe_arrow([pa.array(["1", "2", "3" * 9])])
        assert calls == []
        assert tracker.result()[0] == ColumnType(ColumnKind.TEXT, length=9)

    def test_columns_past_the_count_are_ignored(self) -> None:
        """A batch wider than the tracker is cut; a narrower one leaves the rest NULL."""
        tracker = ArrowTypeTracker(2)
        tracker.observe_arrow([pa.array(["1"]), pa.array(["x"]), pa.array(["2024-01-01"])])
        tracker.observe_arrow([pa.array(["2"])])
        assert [t.kind for t in tracker.result()] == [ColumnKind.INTEGER, ColumnKind.TEXT]
        assert tracker.rows_seen == 2


class TestBooleanSpellings:
    def test_the_bound_counts_every_case_insensitive_spelling(self) -> None:
        """BOOLEAN_SPELLINGS is the number of distinct strings Python's case-insensitive boolean
        pattern takes, over all of Unicode (so a column with more distinct values is not boolean)."""
        letters = sorted(set("".join(w for w in BOOLEAN_PAIRS if w.islower())))
        either = re.compile(f"(?i:[{''.join(letters)}])")
        variants: dict[str, set[str]] = {letter: set() for letter in letters}
        for code in range(sys.maxunicode + 1):
            char = chr(code)
            if either.fullmatch(char):
                for letter in letters:
                    if re.fullmatch(f"(?i:{letter})", char):
                        variants[letter].add(char)
        words = re.fullmatch(r"\(\?i:(.*)\)", _BOOL_PAT).group(1).split("|")  # type: ignore[union-attr]
        total = 0
        for word in words:
            count = 1
            for letter in word:
                count *= len(variants[letter])
            total += count
        assert "ſ" in variants["s"]
        assert total == BOOLEAN_SPELLINGS
