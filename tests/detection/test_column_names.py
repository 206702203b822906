"""Header cells that clash once normalised get a suffix instead of refusing the file (issue 16)."""

from __future__ import annotations

from backend.naming import name_clashes, normalize_columns


class TestClashingNames:
    def test_clashing_texts_get_the_next_free_suffix(self) -> None:
        """Temp (°C) and Temp [°C] become temp_c and temp_c_2."""
        assert normalize_columns(["Time", "Temp (°C)", "Temp [°C]"]) == ("time", "temp_c", "temp_c_2")

    def test_many_clashes_count_up(self) -> None:
        """Rate %, Rate #, Rate and rate become rate, rate_2, rate_3, rate_4."""
        assert normalize_columns(["Rate %", "Rate #", "Rate", "rate"]) == (
            "rate",
            "rate_2",
            "rate_3",
            "rate_4",
        )

    def test_identical_cells_still_count_their_copies(self) -> None:
        """Identical cells get _2 as before, and a clash after them takes the next free name."""
        assert normalize_columns(["id", "id", "ID"]) == ("id", "id_2", "id_3")

    def test_suffix_never_takes_an_existing_name(self) -> None:
        """A blank cell's column_N does not reuse a name a header cell already has."""
        assert normalize_columns(["column_2", ""]) == ("column_2", "column_2_2")

    def test_clashes_are_listed_with_the_earlier_header(self) -> None:
        """name_clashes lists each renamed clashing cell with its column and the header it clashed with."""
        headers = ["Temp (°C)", "Temp [°C]", "id", "id"]
        assert name_clashes(headers, normalize_columns(headers)) == (("Temp [°C]", "temp_c_2", "Temp (°C)"),)
