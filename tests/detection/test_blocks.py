"""Stacked tables: where each table starts, how wide it is and where its header is."""

from __future__ import annotations

from backend.detection.blocks import find_blocks
from backend.detection.dialect import Dialect, SampleRecord, parse_records, split_lines


def records(text: str) -> list[SampleRecord]:
    return [r for r in parse_records(split_lines(text), Dialect(",")) if r.values]


def blocks(text: str, header_rows: int = 1) -> list[tuple[int, int | None, int, int | None, int]]:
    recs = records(text)
    width = len(recs[header_rows].values) if len(recs) > header_rows else len(recs[0].values)
    found = find_blocks(recs, header_rows=header_rows, width=width, complete=True)
    return [(b.first_line, b.last_line, b.width, b.header_line, b.rows) for b in found]


class TestFindBlocks:
    def test_summary_then_detail_after_a_blank_line(self) -> None:
        """A 3-column table, a blank line and a 4-column table with its own header are two blocks."""
        text = (
            "Region,Stores,Margin\nNorth,14,17.1\nSouth,22,17.9\n\n"
            "Store,Region,Staff,Revenue\nN1,North,4,9\nN2,North,5,8\n"
        )
        assert blocks(text) == [(1, 3, 3, 1, 2), (5, 7, 4, 5, 2)]

    def test_second_table_without_a_blank_line(self) -> None:
        """A header of another width over its own rows starts a table, blank line or not."""
        text = (
            "Scenario,Objective,Status\nbase,54000,Optimal\nhigh,71250,Optimal\n"
            "Scenario,Period,Demand,Supply\nbase,1,1200,1180\nhigh,2,1250,1250\n"
        )
        assert [b[0] for b in blocks(text)] == [1, 4]

    def test_repeated_header(self) -> None:
        """A row equal to the header further down starts a second table."""
        assert [b[3] for b in blocks("id,name\n1,a\n2,b\nid,name\n3,c\n")] == [1, 4]

    def test_section_title_after_an_empty_line(self) -> None:
        """A title line after an empty line, above a header, starts a section of the same width."""
        text = "Site,Visits,Rate\nLeeds,1200,0.25\n,,\nRegion: South,,\nSite,Visits,Rate\nBath,700,0.14\n"
        assert blocks(text) == [(1, 2, 3, 1, 1), (4, 6, 3, 5, 1)]

    def test_same_width_header_after_a_blank_line(self) -> None:
        """After a blank line, words over numbers (x,y over 1,2) start a second table."""
        assert len(blocks("key,value\nk0,5\nk1,7\n\nx,y\n1,2\n3,4\n")) == 2

    def test_one_ragged_row_is_not_a_second_table(self) -> None:
        """A single odd row after a blank line is not a table."""
        assert blocks("a,b,c\n1,2,3\n\n4,5\n6,7,8\n9,10,11\n") == []

    def test_data_row_after_a_blank_line_is_not_a_header(self) -> None:
        """A row shaped like the rows above (k5,unknown) is no header, though it has a word."""
        assert blocks("key,value\nk0,5\nk1,7\nk2,8\n\nk5,unknown\nk6,7\nk7,9\n") == []

    def test_short_rows_without_a_header_are_not_a_table(self) -> None:
        """Several short rows in a row are ragged rows, not a table, when none is a header."""
        assert blocks("id,a,b\n1,2,3\n4,5\n6,7\n8,9,10\n") == []

    def test_last_block_of_a_sample_may_go_on(self) -> None:
        """When the records are not the whole file, the last block has no known last line."""
        recs = records("a,b,c\n1,2,3\n\nx,y\n1,2\n")
        found = find_blocks(recs, header_rows=1, width=3, complete=False)
        assert found[-1].last_line is None and found[0].last_line == 2


class TestNoFalseSplits:
    def test_one_word_over_one_number_after_a_blank_line_is_a_row(self) -> None:
        """banana,unknown after a blank line (one word where numbers are) does not start a table."""
        assert blocks("item,qty\napple,3\npear,4\n\nbanana,unknown\nkiwi,5\nlime,6\n") == []
