"""Where the table starts: titles, metadata, blank lines and the sep= hint above it."""

from __future__ import annotations

from backend.detection.dialect import Dialect, SampleRecord, parse_records, split_lines
from backend.detection.layout import delimiter_hint, find_table_start


def records(text: str, delimiter: str = ",") -> list[SampleRecord]:
    return parse_records(split_lines(text), Dialect(delimiter))


def start_line(text: str, width: int, *, header: bool = True, delimiter: str = ",") -> int:
    """The line the table starts on, with a header check that answers `header`."""
    recs = records(text, delimiter)
    found = find_table_start(recs, width, delimiter=delimiter, is_header_at=lambda i: header)
    return recs[found.index].line


class TestCertainPreamble:
    def test_title_lines_and_blank_line_are_preamble(self) -> None:
        """Title lines and a blank line above the header are skipped."""
        assert start_line("Sales report\nGenerated 2024-01-31\n\nid,name,score\n1,a,2\n", 3) == 4

    def test_key_value_lines_are_preamble_in_a_wide_table(self) -> None:
        """Two-field key/value lines above a four-column table are preamble."""
        assert start_line("Report,Q3\nDate,2024-01-31\nid,name,score,x\n1,a,2,y\n", 4) == 3

    def test_delimiter_only_lines_are_preamble_even_without_a_header(self) -> None:
        """Lines made only of delimiters are skipped whatever follows them."""
        assert start_line(";;;;\n;;;;\n1;2;3;4;5\n6;7;8;9;0\n", 5, header=False, delimiter=";") == 3

    def test_short_header_of_a_trailing_delimiter_file_is_not_preamble(self) -> None:
        """A header one field short of the data (data rows end with a delimiter) starts the table."""
        assert start_line("a,b,c\n1,2,3,\n4,5,6,\n", 4) == 1

    def test_single_column_starts_at_first_line(self) -> None:
        """A one-column table has no preamble to find, only leading blank lines."""
        assert start_line("\nname\nAnna\n", 1) == 2

    def test_skipped_lines_carry_their_reason_and_text(self) -> None:
        """Each skipped line is reported with its line number, why it was skipped and its text."""
        recs = records("Report,Q3,,,\n,,,,\nid,name,a,b,c\n1,x,2,3,4\n")
        found = find_table_start(recs, 5, delimiter=",", is_header_at=lambda i: True)
        assert [(s.line, s.reason, s.text) for s in found.skipped] == [
            (1, "2 of 5 cells filled, above a blank line", "Report,Q3,,,"),
            (2, "only delimiters", ",,,,"),
        ]

    def test_narrower_table_above_is_not_preamble(self) -> None:
        """A narrower block that is plainly a table of its own (header over typed rows) is kept."""
        text = (
            "Region,Stores,Margin\nNorth,14,17.1\nSouth,22,17.9\n\n"
            "Store,Region,Staff,Revenue,Costs\nN1,North,4,9,8\n"
        )
        assert start_line(text, 5) == 1


class TestPaddedTitles:
    def test_title_padded_to_the_width_is_a_title(self) -> None:
        """A title padded with delimiters to the table's width is skipped, with the padded blank line."""
        text = (
            "Riverside District Council - Expenditure October 2023,,,,\n,,,,\n"
            "Dept,Code,Date,Supplier,Net\nH,X1,03/10/2023,N Ltd,1.0\n"
        )
        assert start_line(text, 5) == 3

    def test_title_in_quotes_over_several_lines(self) -> None:
        """A quoted title cell spanning three lines is one skipped record; the table starts after it."""
        text = '"Annual Return\nNorthshire\n2022/23",,,\nid,name,day,value\n1,a,2024-01-01,5\n'
        assert start_line(text, 4) == 4

    def test_sparse_line_above_a_blank_line(self) -> None:
        """A line with fewer than half its cells filled, above a blank line, is preamble."""
        text = (
            "Published:,14 February 2024,,,,\n,,,,,\n"
            "Ref,Org,Ward,Purpose,Amount,Date\nC1,A,B,C,1,2024-01-09\n"
        )
        assert start_line(text, 6) == 3

    def test_short_title_above_a_text_header(self) -> None:
        """A lone short label that would not join the header (text over text) is a title."""
        assert (
            start_line("Staff list,,\nName,Dept,Email\nAnna Lee,HR,anna@x.org\nBob Ray,IT,bob@x.org\n", 3)
            == 2
        )

    def test_short_group_label_right_above_the_header_is_not_a_title(self) -> None:
        """A short label directly above the header (a group row) is kept for the header."""
        assert start_line("Group A,,\nzip,country,code\n01234,France,FR12\n", 3) == 1

    def test_uncertain_preamble_is_kept_without_a_header_below(self) -> None:
        """Without a header below, a long first cell in a padded row may be data: nothing is skipped."""
        text = "a long first value of the table,,\n1,2,3\n4,5,6\n"
        assert start_line(text, 3, header=False) == 1


class TestMetadata:
    def test_instrument_lines_wider_than_the_table(self) -> None:
        """Metadata lines with more fields than the table above a short header are skipped."""
        text = (
            "Exported by SpectraView 3.2,Sample B-17 measured Tuesday, March 5 2024\n"
            "nm,Abs\n200,1.9\n210,1.7\n"
        )
        assert start_line(text, 2) == 2


class TestDelimiterHint:
    def test_excel_sep_line(self) -> None:
        """A first line sep=; names the delimiter."""
        assert delimiter_hint("sep=;\r\na;b\r\n") == ";"

    def test_quoted_sep_line(self) -> None:
        """A quoted "sep=," line is a hint too."""
        assert delimiter_hint('"sep=,"\na,b\n') == ","

    def test_no_hint(self) -> None:
        """A header that merely starts with sep is no hint."""
        assert delimiter_hint("separator,b\n1,2\n") is None
