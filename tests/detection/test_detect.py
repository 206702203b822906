"""detect(): the whole detection stage on real files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from backend.config import Settings
from backend.detection import TAIL_BYTES, detect
from backend.errors import DetectionError, EmptyFileError
from backend.load.csv_python import iter_records
from backend.models import ColumnKind, TypePolicy

ROW = "{i},name {i},2024-01-{d:02d},{i}.5\n"


def rows_text(start: int, stop: int) -> str:
    return "".join(ROW.format(i=i, d=i % 28 + 1) for i in range(start, stop))


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def write(tmp_path: Path, data: bytes | str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_bytes_of_this_process() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


class TestEmptyAndBinary:
    def test_zero_byte_file(self, tmp_path: Path, settings: Settings) -> None:
        """A 0-byte file is an EmptyFileError."""
        with pytest.raises(EmptyFileError, match="0 bytes"):
            detect(write(tmp_path, b""), settings)

    def test_blank_lines_only(self, tmp_path: Path, settings: Settings) -> None:
        """A file of blank lines has no header and no rows."""
        with pytest.raises(EmptyFileError, match="no header and no rows"):
            detect(write(tmp_path, "\n\r\n  \n"), settings)

    def test_png_renamed_csv(self, tmp_path: Path, settings: Settings) -> None:
        """A PNG image named .csv is a clean DetectionError naming the format and the file."""
        data = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
        with pytest.raises(DetectionError, match="PNG image") as info:
            detect(write(tmp_path, data, "image.csv"), settings)
        assert "image.csv" in str(info.value)

    def test_xlsx_renamed_csv(self, tmp_path: Path, settings: Settings) -> None:
        """A real ZIP archive (what an xlsx is) named .csv is refused as a ZIP archive."""
        path = tmp_path / "book.csv"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("xl/workbook.xml", "<workbook/>" * 100)
        with pytest.raises(DetectionError, match=r"ZIP archive \(xlsx\?\)"):
            detect(path, settings)

    def test_no_line_break_in_sample(self, tmp_path: Path, settings: Settings) -> None:
        """A sample without any line break is refused, naming the sample size."""
        with pytest.raises(DetectionError, match="no line break in the first 4096 bytes"):
            detect(write(tmp_path, "a," * 10000), settings, sample_bytes=4096)

    def test_inconclusive_dialect(self, tmp_path: Path, settings: Settings) -> None:
        """Rows of ever-changing width give no dialect."""
        text = "".join(",".join(["v"] * (k % 5 + 2)) + "\n" for k in range(60))
        with pytest.raises(DetectionError, match="inconclusive dialect"):
            detect(write(tmp_path, text), settings)


class TestSmallFiles:
    def test_header_only(self, tmp_path: Path, settings: Settings) -> None:
        """A header-only file has one header row and no data rows."""
        detection = detect(write(tmp_path, "id,name,score\n"), settings)
        assert (detection.header_rows, detection.headers, detection.sample_rows) == (
            1,
            ("id", "name", "score"),
            0,
        )
        assert detection.estimated_rows == 0

    def test_one_row(self, tmp_path: Path, settings: Settings) -> None:
        """A header and one row: one header row and one data row."""
        detection = detect(write(tmp_path, "id,name\n1,Anna"), settings)
        assert (detection.header_rows, detection.sample_rows, detection.line_terminator) == (1, 1, "\n")

    def test_headers_of_a_file_without_header(self, tmp_path: Path, settings: Settings) -> None:
        """Without a header the names are column_1..N."""
        detection = detect(write(tmp_path, rows_text(1, 10)), settings)
        assert (detection.header_rows, detection.headers) == (
            0,
            ("column_1", "column_2", "column_3", "column_4"),
        )


class TestTypesAndWarnings:
    def test_text_policy_gives_text_with_lengths(self, tmp_path: Path, settings: Settings) -> None:
        """With type_policy text every column is TEXT with its longest sample value."""
        detection = detect(write(tmp_path, "a,b\n1,xyz\n22,q\n"), settings)
        assert [(t.kind, t.length) for t in detection.column_types] == [
            (ColumnKind.TEXT, 2),
            (ColumnKind.TEXT, 3),
        ]

    def test_infer_policy_types_the_columns(self, tmp_path: Path) -> None:
        """With type_policy infer the sample's types are reported."""
        settings = Settings(_env_file=None, type_policy=TypePolicy.INFER)  # type: ignore[call-arg]
        detection = detect(write(tmp_path, "id,name,day,x\n" + rows_text(1, 30)), settings)
        kinds = [t.kind for t in detection.column_types]
        assert kinds == [ColumnKind.INTEGER, ColumnKind.TEXT, ColumnKind.DATE, ColumnKind.DECIMAL]

    def test_date_order_setting_is_used(self, tmp_path: Path) -> None:
        """date_order from the settings settles ambiguous day/month dates."""
        settings = Settings(_env_file=None, type_policy=TypePolicy.INFER, date_order="mdy")  # type: ignore[call-arg]
        detection = detect(write(tmp_path, "d\n01/02/2024\n03/04/2024\n"), settings)
        assert detection.column_types[0].date_format == "%m/%d/%Y"

    def test_second_table_is_refused_naming_both_blocks(self, tmp_path: Path, settings: Settings) -> None:
        """A second table with its own header is refused, naming each block's lines and width.

        (Was a warning; issue 16 item 5 asks for a refusal that says what to split.)
        """
        text = "id,name,score\n1,a,2\n3,b,4\n\nkey,value\nx,1\nz,2\n"
        with pytest.raises(
            DetectionError, match=r"stacked tables.*lines 1-3 \(3 columns\).*lines 5-7 \(2 columns\)"
        ):
            detect(write(tmp_path, text), settings)

    def test_damaged_utf8_in_sample_is_an_error_in_strict_mode(
        self, tmp_path: Path, settings: Settings
    ) -> None:
        """Undecodable bytes in the sample fail detection with their offset (strict)."""
        data = ("a,b\n" + "é,ü\n" * 20).encode() + b"x\xff,y\n"
        offset = data.index(b"\xff")
        with pytest.raises(DetectionError, match=f"offset {offset}"):
            detect(write(tmp_path, data), settings)

    def test_damaged_utf8_in_sample_is_replaced_in_replace_mode(self, tmp_path: Path) -> None:
        """In replace mode the same file is UTF-8 with a warning."""
        settings = Settings(_env_file=None, decode_errors="replace")  # type: ignore[call-arg]
        data = ("a,b\n" + "é,ü\n" * 20).encode() + b"x\xff,y\n"
        detection = detect(write(tmp_path, data), settings)
        assert detection.encoding == "utf-8"
        assert any("replaced" in w for w in detection.warnings)


class TestLargeFiles:
    def test_reads_only_the_sample_and_the_tail(self, tmp_path: Path, settings: Settings) -> None:
        """On a 300 MB (sparse) file detect() reads the sample and the tail, never the whole file."""
        path = tmp_path / "big.csv"
        head = ("id,name,day,x\n" + rows_text(0, 60000)).encode()
        tail = rows_text(0, 4000).encode() + b"Total,4000\n"
        with open(path, "wb") as handle:
            handle.write(head)
            handle.seek(300 * 1024 * 1024)
            handle.write(tail)
        detect(write(tmp_path, "a,b\n1,2\n", "warm.csv"), settings)  # imports happen outside the count
        before = read_bytes_of_this_process()
        detection = detect(path, settings)
        read = read_bytes_of_this_process() - before
        assert read <= settings.sample_bytes + TAIL_BYTES + 2 * 1024 * 1024
        assert detection.trailer_rows == 1
        assert detection.estimated_rows is not None and detection.estimated_rows > 10 * detection.sample_rows

    def test_estimated_rows_of_a_large_file(self, tmp_path: Path, settings: Settings) -> None:
        """Rows are estimated from the sample's bytes per row, within a few percent."""
        path = write(tmp_path, "id,name,day,x\n" + rows_text(10000, 70000))
        detection = detect(path, settings, sample_bytes=64 * 1024)
        assert detection.sample_rows < 60000
        assert detection.estimated_rows is not None
        assert abs(detection.estimated_rows - 60000) < 0.05 * 60000

    def test_trailer_beyond_the_sample_is_found_and_dropped(self, tmp_path: Path, settings: Settings) -> None:
        """A trailer at the end of a file larger than the sample is found in the tail and not read as data."""
        path = write(tmp_path, "id,name,day,x\n" + rows_text(0, 5000) + "EOF\n")
        detection = detect(path, settings, sample_bytes=8192)
        assert detection.trailer_rows == 1
        records = list(iter_records(path, detection))
        assert len(records) == 5000
        assert records[-1].values[0] == "4999"

    def test_utf16_tail_is_decoded_on_unit_boundaries(self, tmp_path: Path, settings: Settings) -> None:
        """The tail of a UTF-16 file is decoded on two-byte boundaries, so its trailer is found."""
        text = "id,name,day,x\n" + rows_text(0, 3000) + "Total,3000\n"
        path = write(tmp_path, b"\xff\xfe" + text.encode("utf-16-le"))
        detection = detect(path, settings, sample_bytes=8191)
        assert (detection.encoding, detection.trailer_rows) == ("utf-16-le", 1)
