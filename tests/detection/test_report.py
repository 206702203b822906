"""format_detection(): the human summary of a detection."""

from __future__ import annotations

from backend.detection.report import describe_type, format_detection
from backend.models import ColumnKind, ColumnType, Detection, SkippedLine, TableBlock


class TestFormatDetection:
    def test_names_the_dialect_and_lists_columns(self) -> None:
        """The summary names the delimiter, quote and layout, then one line per column with its type."""
        detection = Detection(
            encoding="cp1252",
            delimiter="\t",
            encoding_confidence=0.87,
            line_terminator="\r\n",
            skip_rows=2,
            header_rows=1,
            headers=("Order Date", "Amount"),
            column_types=(
                ColumnType(ColumnKind.DATE, length=10, date_format="%d/%m/%Y"),
                ColumnType(ColumnKind.DECIMAL, length=8, precision=9, scale=2),
            ),
            estimated_rows=1000,
            sample_rows=120,
            trailer_rows=1,
            warnings=("1 trailer row ignored: 'Total,5'",),
        )
        text = format_detection(detection, ("order_date", "amount"))
        assert "cp1252 (confidence 0.87)" in text
        assert "tab ('\\t')" in text
        assert "CRLF" in text
        assert "~1,000 estimated (120 in the sample)" in text
        assert "  - 1 trailer row ignored" in text
        assert any(
            line.split() == ["1", "Order", "Date", "order_date", "date", "%d/%m/%Y"]
            for line in text.splitlines()
        )
        assert any(line.split() == ["2", "Amount", "amount", "decimal(9,2)"] for line in text.splitlines())

    def test_no_header_and_literal_quotes(self) -> None:
        """Generated names show an empty original and quotes read as data are said so."""
        detection = Detection(
            encoding="utf-8", delimiter="|", quotechar=None, header_rows=0, headers=("column_1",)
        )
        text = format_detection(detection, ("column_1",))
        assert "pipe ('|')" in text
        assert "none (quote characters are data)" in text
        assert "0 (names generated)" in text

    def test_describe_type(self) -> None:
        """Each kind has a short readable form."""
        assert describe_type(ColumnType(ColumnKind.TEXT, length=12)) == "text(12)"
        assert describe_type(ColumnType(ColumnKind.BIGINT)) == "bigint"
        assert (
            describe_type(ColumnType(ColumnKind.DATETIME, date_format="%Y-%m-%d %H:%M"))
            == "datetime %Y-%m-%d %H:%M"
        )


class TestLayoutReport:
    def test_skipped_lines_and_dropped_columns_are_printed(self) -> None:
        """detect's report lists each line skipped above the header with its reason, and the dropped field."""
        detection = Detection(
            encoding="utf-8",
            delimiter=",",
            skip_rows=2,
            headers=("a", "b"),
            skipped_lines=(
                SkippedLine(1, 1, "title (one filled cell)", "Report October,,"),
                SkippedLine(2, 2, "only delimiters", ",,"),
            ),
            dropped_trailing_columns=1,
        )
        text = format_detection(detection, ("a", "b"))
        assert "Skipped above the header:" in text
        assert "  line 1: title (one filled cell): 'Report October,,'" in text
        assert "  line 2: only delimiters: ',,'" in text
        assert "Dropped: 1 empty trailing field per row (a trailing delimiter)" in text

    def test_trailer_renames_and_blocks_are_printed(self) -> None:
        """The trailer, the renamed clashing columns and stacked blocks each get their own lines."""
        detection = Detection(
            encoding="utf-8",
            delimiter=",",
            headers=("Temp (°C)", "Temp [°C]"),
            trailer_rows=1,
            trailer_lines=(SkippedLine(9, 9, "trailer record (1 of 2 fields)", "EOF"),),
            blocks=(TableBlock(1, 3, 2, 1, 2), TableBlock(5, None, 4, 5, 10)),
            block=1,
        )
        text = format_detection(detection, ("temp_c", "temp_c_2"))
        assert "  line 9: trailer record (1 of 2 fields): 'EOF'" in text
        assert "  'Temp [°C]' -> temp_c_2 (clashes with 'Temp (°C)')" in text
        assert "  1. lines 1-3 (2 columns), 2 rows" in text
        assert "  2. lines 5-end (4 columns), 10 rows  (read)" in text
