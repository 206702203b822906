"""Column types over a whole file, and conversion of text to values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import pytest

from backend.detection.types import TypeTracker, parse_value, value_kind
from backend.models import ColumnKind, ColumnType

#: Columns whose every value fits one type (shared with the Arrow tracker's tests).
CLEAN_COLUMNS = [
    (["1", "-20", "300"], ColumnKind.INTEGER),
    (["2147483647", "-2147483648"], ColumnKind.INTEGER),
    (["2147483648", "5"], ColumnKind.BIGINT),
    (["-9223372036854775808", "9223372036854775807"], ColumnKind.BIGINT),
    (["9223372036854775808"], ColumnKind.DECIMAL),
    (["1.50", "20.00", "-0.25"], ColumnKind.DECIMAL),
    (["TRUE", "FALSE", "TRUE"], ColumnKind.BOOLEAN),
    (["yes", "no"], ColumnKind.BOOLEAN),
    (["Yes", "No"], ColumnKind.BOOLEAN),
    (["Y", "N"], ColumnKind.BOOLEAN),
    (["2024-01-31", "1999-12-01"], ColumnKind.DATE),
    (["2024-01-31 10:00:00", "2024-02-01 23:59:59"], ColumnKind.DATETIME),
    (["2024-01-31T10:00", "2024-02-01T23:59"], ColumnKind.DATETIME),
]

#: Columns that must stay text, each for one rule of `backend.detection.types`.
DOUBTFUL_COLUMNS = [
    pytest.param(["007", "123"], id="leading-zero"),
    pytest.param(["01234", "98765"], id="zip-codes"),
    pytest.param(["1", "2", "x"], id="one-misfit"),
    pytest.param(["+5", "6"], id="plus-sign"),
    pytest.param(["1e5", "2"], id="exponent"),
    pytest.param(["1,234", "5"], id="thousands-separator"),
    pytest.param(["3,14", "2,5"], id="decimal-comma"),
    pytest.param(["F", "F"], id="lone-letter-flag"),
    pytest.param(["2024-02-30"], id="no-such-day"),
    pytest.param(["2023-02-29"], id="not-a-leap-year"),
    pytest.param(["2023-02-29T10:00:00"], id="not-a-leap-year-t-datetime"),
    pytest.param(["1900-02-29 10:00"], id="not-a-leap-century"),
    pytest.param(["2024-01-31 10:00", "2024-01-31 10:00:00"], id="two-time-shapes"),
    pytest.param(["2024-01-31T10:00:00+01:00"], id="time-zone"),
    pytest.param(["1" * 39], id="too-many-digits"),
    pytest.param(["a\nb"], id="line-break"),
    pytest.param(["1.5", "2.25"], id="mixed-decimal-places"),
    pytest.param(["1.5", "20"], id="integer-beside-decimal"),
    pytest.param(["-0", "5"], id="negative-zero"),
    pytest.param(["-0.00", "1.25"], id="negative-zero-decimal"),
    pytest.param(["true", "False"], id="mixed-boolean-spellings"),
    pytest.param(["yes", "true"], id="two-boolean-families"),
    pytest.param(["tRue", "false"], id="odd-boolean-case"),
    pytest.param(["1/2/2024", "13/12/2024"], id="date-without-leading-zero"),
    pytest.param(["2024-01-31 10:00:00.5"], id="short-fraction"),
    pytest.param(["NA", "1", "2"], id="na-is-text"),
    pytest.param(["1.", "2."], id="point-without-decimals"),
    pytest.param([".5", "0.5"], id="point-without-integer"),
    pytest.param(["true", "falſe"], id="long-s-false"),
    pytest.param(["31/12/2024", "12/31/2024"], id="both-orders-proven"),
]


def infer(column: Sequence[str | None], *, date_order: str = "auto") -> ColumnType:
    tracker = TypeTracker(1, date_order=date_order)
    for value in column:
        tracker.observe([value])
    return tracker.result()[0]


class TestTypeTracker:
    @pytest.mark.parametrize(("values", "kind"), CLEAN_COLUMNS)
    def test_clean_columns_get_their_type(self, values: list[str], kind: ColumnKind) -> None:
        """A column whose every value fits a type gets that type."""
        assert infer(values).kind is kind

    @pytest.mark.parametrize("values", DOUBTFUL_COLUMNS)
    def test_doubtful_columns_stay_text(self, values: list[str]) -> None:
        """Leading zeros, signs, separators, impossible dates and any misfit keep a column text."""
        assert infer(values).kind is ColumnKind.TEXT

    def test_zero_one_is_integer_not_boolean(self) -> None:
        """A column of 0 and 1 is integer: it may be a count as easily as a flag."""
        assert infer(["0", "1", "1"]).kind is ColumnKind.INTEGER

    def test_leap_day_is_a_date(self) -> None:
        """29 February of a leap year is a valid date."""
        assert infer(["2024-02-29", "2000-02-29"]).kind is ColumnKind.DATE

    def test_empty_and_none_do_not_decide(self) -> None:
        """NULLs (empty strings and None) are ignored when deciding a type."""
        assert infer(["", None, "5", ""]).kind is ColumnKind.INTEGER
        assert infer(["", None]).kind is ColumnKind.TEXT

    def test_misfit_after_many_batches_still_counts(self) -> None:
        """A single text value after tens of thousands of integers makes the column text."""
        assert infer([str(i) for i in range(20000)] + ["n/a"]).kind is ColumnKind.TEXT

    def test_length_is_tracked_for_every_column(self) -> None:
        """Every column reports its longest value, typed or not."""
        assert infer(["1", "12345", ""]).length == 5
        assert infer(["ab", "abcdef"]).length == 6

    def test_decimal_precision_and_scale(self) -> None:
        """Precision covers the most integer digits plus the scale every value shares."""
        column = infer(["12345.600", "1.234", "-7.000"])
        assert (column.kind, column.precision, column.scale) == (ColumnKind.DECIMAL, 8, 3)

    def test_boolean_records_its_spelling(self) -> None:
        """A boolean column keeps the spelling pair of its file, so it can be written back as it was."""
        column = infer(["Yes", "No", "Yes"])
        assert (column.true_text, column.false_text) == ("Yes", "No")
        assert (infer(["f", "t"]).true_text, infer(["f", "t"]).false_text) == ("t", "f")

    def test_huge_integers_become_decimal_with_their_digits(self) -> None:
        """Integers past 64 bits become decimal(p, 0)."""
        column = infer(["123456789012345678901234"])
        assert (column.kind, column.precision, column.scale) == (ColumnKind.DECIMAL, 24, 0)

    def test_a_wider_integer_in_a_later_batch_widens_the_decimal(self) -> None:
        """Past 64 bits, a value with more digits than any before it raises the precision, in any batch."""
        column = infer(["1" * 20] + ["5"] * 5000 + ["1" * 30])
        assert (column.kind, column.precision) == (ColumnKind.DECIMAL, 30)

    def test_day_above_twelve_proves_day_first(self) -> None:
        """A first number above 12 proves day-first order."""
        column = infer(["01/02/2024", "25/12/2024"])
        assert (column.kind, column.date_format) == (ColumnKind.DATE, "%d/%m/%Y")

    def test_second_number_above_twelve_proves_month_first(self) -> None:
        """A second number above 12 proves month-first order."""
        assert infer(["01/02/2024", "12/25/2024"]).date_format == "%m/%d/%Y"

    def test_ambiguous_dates_stay_text_in_auto_mode(self) -> None:
        """With no proof and date_order auto, ambiguous dates stay text rather than risk a swap."""
        assert infer(["01/02/2024", "03/04/2024"]).kind is ColumnKind.TEXT

    @pytest.mark.parametrize(("order", "fmt"), [("dmy", "%d/%m/%Y"), ("mdy", "%m/%d/%Y")])
    def test_configured_order_settles_ambiguous_dates(self, order: str, fmt: str) -> None:
        """date_order decides between day-first and month-first when the data cannot."""
        assert infer(["01/02/2024", "03/04/2024"], date_order=order).date_format == fmt

    def test_another_column_proves_the_order(self) -> None:
        """An order proven by one column settles the ambiguous date columns of the same file."""
        tracker = TypeTracker(2)
        tracker.observe(["01/02/2024", "25/12/2024"])
        tracker.observe(["03/04/2024", "01/01/2024"])
        assert [t.date_format for t in tracker.result()] == ["%d/%m/%Y", "%d/%m/%Y"]

    def test_ragged_rows_count_as_nulls_or_are_cut(self) -> None:
        """Short rows leave the missing cells NULL; values past the last column are ignored."""
        tracker = TypeTracker(2)
        tracker.observe(["1"])
        tracker.observe(["2", "3", "extra text"])
        assert [t.kind for t in tracker.result()] == [ColumnKind.INTEGER, ColumnKind.INTEGER]

    def test_invalid_date_order_is_refused(self) -> None:
        """An unknown date_order is a programming error."""
        with pytest.raises(ValueError, match="date_order"):
            TypeTracker(1, date_order="ydm")


class TestObserveColumns:
    def test_columns_give_the_same_types_as_rows(self):
        """Batches handed over as columns decide the same types as the same rows observed one by one."""
        rows = [
            [str(i), f"{i}.5", "2024-01-31" if i % 2 else "2024-02-01", "yes" if i % 3 else "", f"x{i}"]
            for i in range(5000)
        ]
        by_rows = TypeTracker(5)
        for row in rows:
            by_rows.observe(row)
        by_columns = TypeTracker(5)
        for start in range(0, len(rows), 1500):
            by_columns.observe_columns(list(zip(*rows[start : start + 1500], strict=True)))
        assert by_columns.result() == by_rows.result()
        assert by_columns.rows_seen == by_rows.rows_seen == 5000


class TestParseValue:
    @pytest.mark.parametrize(
        ("text", "column_type", "value"),
        [
            ("42", ColumnType(ColumnKind.INTEGER), 42),
            ("-9223372036854775808", ColumnType(ColumnKind.BIGINT), -9223372036854775808),
            ("1.50", ColumnType(ColumnKind.DECIMAL, precision=3, scale=2), Decimal("1.50")),
            ("Yes", ColumnType(ColumnKind.BOOLEAN), True),
            ("f", ColumnType(ColumnKind.BOOLEAN), False),
            ("2024-02-29", ColumnType(ColumnKind.DATE, date_format="%Y-%m-%d"), date(2024, 2, 29)),
            ("25/12/2024", ColumnType(ColumnKind.DATE, date_format="%d/%m/%Y"), date(2024, 12, 25)),
            (
                "2024-01-31T10:00:05.25",
                ColumnType(ColumnKind.DATETIME, date_format="%Y-%m-%dT%H:%M:%S.%f"),
                datetime(2024, 1, 31, 10, 0, 5, 250000),
            ),
            (
                "12/25/2024 08:30",
                ColumnType(ColumnKind.DATETIME, date_format="%m/%d/%Y %H:%M"),
                datetime(2024, 12, 25, 8, 30),
            ),
            (" padded ", ColumnType(ColumnKind.TEXT), " padded "),
        ],
    )
    def test_text_becomes_the_typed_value(self, text: str, column_type: ColumnType, value: object) -> None:
        """Each kind converts its text to the matching Python value; text stays as written."""
        assert parse_value(text, column_type) == value

    def test_empty_is_none_for_typed_columns(self) -> None:
        """An empty cell of a typed column is NULL."""
        assert parse_value("", ColumnType(ColumnKind.INTEGER)) is None

    @pytest.mark.parametrize(
        ("text", "column_type"),
        [
            ("007", ColumnType(ColumnKind.INTEGER)),
            ("maybe", ColumnType(ColumnKind.BOOLEAN)),
            ("1,5", ColumnType(ColumnKind.DECIMAL)),
            ("2024-13-01", ColumnType(ColumnKind.DATE, date_format="%Y-%m-%d")),
        ],
    )
    def test_misfits_raise_value_error(self, text: str, column_type: ColumnType) -> None:
        """Text that does not fit the column's type raises ValueError."""
        with pytest.raises(ValueError):
            parse_value(text, column_type)


class TestValueKind:
    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ("", None),
            ("12", ColumnKind.INTEGER),
            ("1.5", ColumnKind.DECIMAL),
            ("no", ColumnKind.BOOLEAN),
            ("31.12.2024", ColumnKind.DATE),
            ("2024-01-01 00:00", ColumnKind.DATETIME),
            ("Paris", ColumnKind.TEXT),
            ("2023-02-29", ColumnKind.TEXT),
        ],
    )
    def test_single_values_are_classified(self, text: str, kind: ColumnKind | None) -> None:
        """One value's narrowest kind, dates in any supported order."""
        assert value_kind(text) is kind
