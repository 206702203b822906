"""Preamble, trailer and second-table recognition."""

from __future__ import annotations

import pytest

from backend.detection.dialect import Dialect, SampleRecord, parse_records, split_lines
from backend.detection.layout import count_trailer_rows, is_trailer, second_table_line, table_start


def records(text: str) -> list[SampleRecord]:
    return parse_records(split_lines(text), Dialect(","))


class TestTableStart:
    def test_title_lines_and_blank_line_are_preamble(self) -> None:
        """Title lines and a blank line above the header are skipped."""
        recs = records("Sales report\nGenerated 2024-01-31\n\nid,name,score\n1,a,2\n")
        assert recs[table_start(recs, 3)].line == 4

    def test_key_value_lines_are_preamble_in_a_wide_table(self) -> None:
        """Two-field key/value lines above a four-column table are preamble."""
        recs = records("Report,Q3\nDate,2024-01-31\nid,name,score,x\n1,a,2,y\n")
        assert recs[table_start(recs, 4)].line == 3

    def test_short_header_of_a_trailing_delimiter_file_is_not_preamble(self) -> None:
        """A header one field short of the data (data rows end with a delimiter) starts the table."""
        recs = records("a,b,c\n1,2,3,\n4,5,6,\n")
        assert table_start(recs, 4) == 0

    def test_single_column_starts_at_first_line(self) -> None:
        """A one-column table has no preamble to find."""
        recs = records("\nname\nAnna\n")
        assert recs[table_start(recs, 1)].line == 2


class TestTrailer:
    @pytest.mark.parametrize(
        "values",
        [
            ["Total", "123"],
            ["EOF"],
            ["Record count: 500"],
            ["Total rows"],
            ["500"],
            ["#500"],
            ["TOTAL", "", "1,234.50"],
        ],
    )
    def test_trailer_records(self, values: list[str]) -> None:
        """Totals, end markers and record counts are trailers."""
        assert is_trailer(values, 3)

    @pytest.mark.parametrize(
        "values",
        [["Total Solutions Ltd", "5", "x"], ["Anna", "12"], ["500"], ["", "", ""], ["Total", "x", "y", "z"]],
    )
    def test_data_records_are_not_trailers(self, values: list[str]) -> None:
        """A last data row, even one starting with a trailer word, is data."""
        width = 1 if values == ["500"] else 3
        assert not is_trailer(values, width)

    def test_counts_consecutive_trailer_rows_from_the_end(self) -> None:
        """Several trailer rows at the end are counted; the scan stops at the first data row."""
        last = [["a", "1"], ["Total", "5"], ["EOF"]]
        assert count_trailer_rows(last, 2) == 2


class TestSecondTable:
    def test_block_of_another_width_after_a_blank_line(self) -> None:
        """After a blank line, rows of another width are a second table."""
        recs = records("1,2,3\n4,5,6\n\nx,y\n7,8\n9,10\n")
        assert second_table_line(recs, 3, None) == (4, 2)

    def test_repeated_header(self) -> None:
        """A row equal to the header further down starts a second table."""
        recs = records("1,2\n3,4\nid,name\n5,6\n")
        assert second_table_line(recs, 2, ["id", "name"]) == (3, 2)

    def test_one_ragged_row_is_not_a_second_table(self) -> None:
        """A single odd row after a blank line is not a table."""
        recs = records("1,2,3\n\n4,5\n6,7,8\n9,10,11\n")
        assert second_table_line(recs, 3, None) is None
