"""Header rows: how many, and the names they give."""

from __future__ import annotations

import pytest

from backend.detection.header import count_header_rows, header_names


def table(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.strip().splitlines()]


class TestCountHeaderRows:
    def test_text_header_above_typed_data(self) -> None:
        """Names above numbers and dates are a header."""
        rows = table("id,born,score\n1,2001-01-01,1.5\n2,1999-05-05,2.5\n3,1980-02-02,0.5")
        assert count_header_rows(rows, 3) == 1

    def test_typed_first_row_is_data(self) -> None:
        """A first row whose cells fit the column types is data: no header."""
        rows = table("1,2001-01-01,1.5\n2,1999-05-05,2.5\n3,1980-02-02,0.5\n4,1970-03-03,9.0")
        assert count_header_rows(rows, 3) == 0

    def test_years_above_counts_are_a_header(self) -> None:
        """Four-digit years above non-year numbers are a header, though they look numeric."""
        rows = table("country,2019,2020\nFrance,67012,67391\nNorway,5328,5379\nJapan,126633,126261")
        assert count_header_rows(rows, 3) == 1

    def test_years_above_years_are_data(self) -> None:
        """A row of years above more years is just data."""
        rows = table("1999,2001\n2003,2004\n2010,2011\n2015,2016")
        assert count_header_rows(rows, 2) == 0

    def test_all_text_header_above_repeating_data(self) -> None:
        """In an all-text table, unique names above repeating values are a header."""
        rows = table("country,code\nFrance,FR12\nNorway,NO34\nFrance,FR56\nJapan,JP78")
        assert count_header_rows(rows, 2) == 1

    def test_all_text_first_row_repeated_below_is_data(self) -> None:
        """In an all-text table, a first row whose values recur below is data."""
        rows = table("France,FR12\nNorway,NO34\nFrance,FR12\nJapan,JP78")
        assert count_header_rows(rows, 2) == 0

    def test_two_header_rows(self) -> None:
        """A unit row under the names joins the header."""
        rows = table("item,price,qty\n(text),(EUR),(pcs)\na,1.5,3\nb,2.5,4\nc,3.5,5\nd,4.5,6")
        assert count_header_rows(rows, 3) == 2

    def test_three_header_rows(self) -> None:
        """A group row, a name row and a unit row are a three-row header."""
        rows = table(
            "Sales,,Costs\nitem,price,price\n(text),(EUR),(EUR)\na,1.5,3.5\nb,2.5,4.5\nc,3.5,5.5\nd,1,2"
        )
        assert count_header_rows(rows, 3) == 3

    def test_data_row_with_empty_numbers_is_not_header(self) -> None:
        """A data row whose typed cells are empty does not join the header."""
        rows = table("id,name,score\n,Anna,\n2,Bob,1.5\n3,Chloe,2.5\n4,Dan,3.5\n5,Eve,4.5")
        assert count_header_rows(rows, 3) == 1

    def test_blank_and_duplicate_header_cells_are_still_a_header(self) -> None:
        """Blank or repeated names do not stop a row from being the header."""
        rows = table("id,,id\n1,2,3\n4,5,6\n7,8,9")
        assert count_header_rows(rows, 3) == 1

    def test_short_code_header_of_the_codes_length(self) -> None:
        """ISO over DEU, FRA... (same length, letters only) is a header: the length says nothing."""
        rows = table("ISO,Country\nDEU,Germany\nFRA,France\nITA,Italy\nESP,Spain")
        assert count_header_rows(rows, 2) == 1

    def test_code_of_the_columns_form_is_data(self) -> None:
        """k1 over k2, k3, k4 (same form, with digits) is a data row."""
        rows = table("k1,\nk2,5\nk3,6\nk4,7")
        assert count_header_rows(rows, 2) == 0

    def test_mostly_empty_first_row_is_data(self) -> None:
        """A first row with one of three cells filled names nothing: it is data."""
        rows = table("A,,\nB,1,2\nC,3,4\nD,5,6")
        assert count_header_rows(rows, 3) == 0

    def test_single_year_over_counts_is_a_header(self) -> None:
        """country,2023 over population counts is a header, though 2023 is a number."""
        rows = table("country,2023\nGermany,84482267\nFrance,68170228\nItaly,58761146")
        assert count_header_rows(rows, 2) == 1

    def test_item_numbers_over_fractions_are_a_header(self) -> None:
        """id,1,2,3 over fractions is a header of numbered items."""
        rows = table("id,1,2,3\nA,0.12,0.53,0.97\nB,0.44,0.08,0.61\nC,0.91,0.27,0.35")
        assert count_header_rows(rows, 4) == 1

    def test_consecutive_numbers_over_whole_numbers_are_data(self) -> None:
        """a,1,2,3 over whole numbers is just a data row."""
        rows = table("a,1,2,3\nb,4,5,6\nc,7,8,9\nd,1,5,2")
        assert count_header_rows(rows, 4) == 0

    @pytest.mark.parametrize(("text", "expected"), [("a,b,c", 1), ("1,2,3", 0)])
    def test_single_record(self, text: str, expected: int) -> None:
        """A lone record is a header unless it holds numbers or dates."""
        assert count_header_rows(table(text), 3) == expected

    def test_no_rows(self) -> None:
        """No records, no header."""
        assert count_header_rows([], 3) == 0


class TestHeaderNames:
    def test_one_row_is_kept_as_written(self) -> None:
        """A single header row gives its cells unchanged, spaces and blanks included."""
        assert header_names([[" a ", "", "b"]], 3) == (" a ", "", "b")

    def test_rows_are_joined_per_column_with_a_space(self) -> None:
        """Multi-row headers join each column's non-blank parts with one space."""
        assert header_names([["Sales", "", "Costs"], ["Q1", "Q2", "Q1"]], 3) == ("Sales Q1", "Q2", "Costs Q1")

    def test_no_header_gives_generated_names(self) -> None:
        """Without a header the names are column_1..N."""
        assert header_names([], 2) == ("column_1", "column_2")
