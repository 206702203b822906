"""The trailer: only records that cannot be data are dropped, each with its reason."""

from __future__ import annotations

import pytest

from backend.detection.dialect import Dialect, SampleRecord, parse_records, split_lines
from backend.detection.trailer import find_trailer, is_marker, is_totals_row


def records(text: str, delimiter: str = ",") -> list[SampleRecord]:
    return [r for r in parse_records(split_lines(text), Dialect(delimiter)) if r.values]


def trailer_texts(text: str, width: int, *, whole: bool = True, delimiter: str = ",") -> list[str]:
    return [s.text for s in find_trailer(records(text, delimiter), width, delimiter=delimiter, whole=whole)]


class TestMarkers:
    @pytest.mark.parametrize(
        "values",
        [
            ["Total", "123"],
            ["EOF"],
            ["Record count: 500"],
            ["Total rows"],
            ["500"],
            ["#500"],
            ["TRAILER", "4"],
        ],
    )
    def test_markers_of_another_width(self, values: list[str]) -> None:
        """Totals, end markers and record counts with fewer fields than the table are trailers."""
        assert is_marker(values, 3)

    @pytest.mark.parametrize(
        "values",
        [
            ["Total Solutions Ltd", "5", "x"],
            ["Anna", "12"],
            ["", "", ""],
            ["Total", "x", "y", "z"],
            ["TOTAL", "", "9"],
        ],
    )
    def test_rows_of_the_table_width_are_no_markers(self, values: list[str]) -> None:
        """A row as wide as the table is never a marker, even when it starts with a trailer word."""
        assert not is_marker(values, 3)

    def test_one_column_table_knows_only_end_markers(self) -> None:
        """In a one-column table EOF is a trailer, a value like Total or 500 is not."""
        assert is_marker(["EOF"], 1)
        assert not is_marker(["Total"], 1) and not is_marker(["500"], 1)

    def test_comment_line_at_the_end(self) -> None:
        """A '#' comment line narrower than the table is a trailer."""
        assert trailer_texts("a\tb\tc\n1\t2\t3\n# processed 1 query\n", 3, delimiter="\t") == [
            "# processed 1 query"
        ]


class TestTotals:
    def test_total_row_whose_sums_match_is_dropped(self) -> None:
        """A Total row of the table's width whose numbers are the column sums is a trailer."""
        text = "x,100.00,20.00\ny,250.50,50.10\nTotal,350.50,70.10\n"
        assert trailer_texts(text, 3) == ["Total,350.50,70.10"]

    def test_real_rows_named_sum_and_count_are_data(self) -> None:
        """metric,weight rows sum,3 and count,2 do not add up: nothing is dropped (issue 16, item 9)."""
        assert trailer_texts("latency,10\nerrors,5\nsum,3\ncount,2\n", 2) == []

    def test_total_that_does_not_add_up_is_data(self) -> None:
        """A Total row whose figure differs from the sum (rounded estimates) stays a row."""
        assert trailer_texts("Yes,412\nNo,655\nTotal,1068\n", 2) == []

    def test_decimal_commas_and_a_constant_currency(self) -> None:
        """Summe with German decimal commas and a repeated currency column is checked and dropped."""
        text = "a;-86,00;EUR\nb;2.840,17;EUR\nc;-54,32;EUR\nSumme;2.699,85;EUR\n"
        assert trailer_texts(text, 3, delimiter=";") == ["Summe;2.699,85;EUR"]

    def test_totals_are_not_checked_without_the_whole_file(self) -> None:
        """In a file larger than the sample the sums cannot be checked: the Total row stays data."""
        assert trailer_texts("x,1\ny,2\nTotal,3\n", 2, whole=False) == []

    def test_totals_row_needs_a_number(self) -> None:
        """A row labelled Total with only text is no totals row."""
        recs = records("x,EUR\ny,EUR\nTotal,EUR\n")
        assert not is_totals_row(recs, 2, 2)


class TestNotesAndEmptyRows:
    def test_empty_rows_at_the_end(self) -> None:
        """Rows of only delimiters after the data are dropped as empty rows."""
        found = find_trailer(records("a,1\nb,2\n,\n,\n"), 2, delimiter=",", whole=True)
        assert [s.reason for s in found] == ["empty row", "empty row"]

    def test_notes_after_a_blank_line(self) -> None:
        """One-cell sentences below a blank line (source, copyright) are notes, dropped."""
        text = "North,602.3,5.9\nWales,605.5,6.8\n\nSource: Annual Survey of Hours and Earnings,,\n"
        assert trailer_texts(text, 3) == ["Source: Annual Survey of Hours and Earnings,,"]

    def test_a_sentence_right_below_the_data_is_a_row(self) -> None:
        """Without a blank line between, a one-cell last row is data, not a note."""
        assert trailer_texts("x,1,2\ny,3,4\nThis is a long last value,,\n", 3) == []

    def test_line_numbers_of_a_tail_are_unknown(self) -> None:
        """Trailer records found in a file's tail are reported with line 0."""
        found = find_trailer(records("a,1,2\nEOF\n"), 3, delimiter=",", whole=False, lines_known=False)
        assert [(s.line, s.text) for s in found] == [(0, "EOF")]
