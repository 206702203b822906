"""The table's width when the header and the rows disagree: trailing delimiters, unnamed columns."""

from __future__ import annotations

from backend.detection.columns import Fit, fit_with_header, fit_without_header


class TestFitWithHeader:
    def test_trailing_delimiter_on_rows_only(self) -> None:
        """Rows one field wider than the header, that field always empty: a trailing delimiter."""
        fit = fit_with_header(["t", "x", "y"], [["0.5", "1", "2", ""], ["1.0", "3", "4", ""]])
        assert (fit.width, fit.dropped, fit.unnamed) == (3, 1, 0)

    def test_trailing_delimiter_on_every_line(self) -> None:
        """An empty last cell in the header and in every row is a trailing delimiter."""
        fit = fit_with_header(["a", "b", ""], [["1", "2", ""], ["3", "4", ""]])
        assert (fit.width, fit.dropped) == (2, 1)

    def test_surplus_with_values_is_an_unnamed_column(self) -> None:
        """Rows wider than the header whose surplus holds values get an unnamed column."""
        fit = fit_with_header(["a", "b"], [["1", "2", "note"], ["3", "4", ""]])
        assert (fit.width, fit.dropped, fit.unnamed) == (3, 0, 1)
        assert fit.header(["a", "b"]) == ["a", "b", ""]

    def test_a_few_long_rows_are_ragged_rows(self) -> None:
        """When only half the rows are longer than the header nothing changes (ragged rows)."""
        fit = fit_with_header(["a", "b"], [["1", "2"], ["3", "4", "5"]])
        assert (fit.width, fit.dropped, fit.unnamed) == (2, 0, 0)

    def test_one_long_row_is_a_ragged_row(self) -> None:
        """a,b over a single row 1,2,3 is a ragged row, not an unnamed column."""
        assert fit_with_header(["a", "b"], [["1", "2", "3"]]) == Fit(2)

    def test_named_empty_column_is_kept(self) -> None:
        """A named last column that is empty in the sample is a column, not a trailing delimiter."""
        fit = fit_with_header(["a", "b", "c"], [["1", "2", ""], ["3", "4", ""]])
        assert (fit.width, fit.dropped) == (3, 0)

    def test_header_only_with_trailing_delimiter(self) -> None:
        """A header-only file whose line ends with a delimiter has no empty last column."""
        fit = fit_with_header(["a", "b", ""], [])
        assert (fit.width, fit.dropped) == (2, 1)

    def test_header_wider_than_rows_with_empty_extra_cells(self) -> None:
        """Empty cells past the rows' width in the header are no names."""
        assert fit_with_header(["a", "b", ""], [["1", "2"], ["3", "4"]]).width == 2


class TestFitRows:
    def test_row_keeps_a_surplus_value(self) -> None:
        """A row whose surplus field holds a value is yielded whole (never glued, never cut)."""
        fit = Fit(3, dropped=1)
        assert fit.row(["1", "2", "3", ""]) == ["1", "2", "3"]
        assert fit.row(["1", "2", "3", "x"]) == ["1", "2", "3", "x"]

    def test_headerless_trailing_delimiters(self) -> None:
        """In a headerless table, a last field empty on every row is a trailing delimiter."""
        assert fit_without_header([["1", "2", ""], ["3", "4", ""]]) == Fit(2, dropped=1)
