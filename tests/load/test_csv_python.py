"""iter_records(): streaming a detected file as data records."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from backend.errors import DetectionError
from backend.load.csv_python import CHUNK_BYTES, Run, iter_records, iter_runs
from backend.models import Detection, Record

CSV = Detection(encoding="utf-8", delimiter=",")


def write(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "f.csv"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read(
    path: Path | io.RawIOBase, detection: Detection = CSV, **kwargs: str
) -> list[tuple[int, int, list[str]]]:
    return [(r.number, r.line, r.values) for r in iter_records(path, detection, **kwargs)]  # type: ignore[arg-type]


class NonSeekable(io.RawIOBase):
    """A binary stream that cannot seek, like the loader's hashing wrapper."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self._buffer.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return False


class TestRecords:
    def test_numbers_and_lines(self, tmp_path: Path) -> None:
        """Records count data rows from 1 and name the physical line where each starts."""
        path = write(tmp_path, 'id,note\n1,"two\nlines"\n\n2,x\n3,"a\r\nb"\n4,y')
        assert read(path) == [
            (1, 2, ["1", "two\nlines"]),
            (2, 5, ["2", "x"]),
            (3, 6, ["3", "a\r\nb"]),
            (4, 8, ["4", "y"]),
        ]

    @pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
    def test_line_endings(self, tmp_path: Path, ending: str) -> None:
        """LF, CRLF and CR-only files give the same records and line numbers."""
        path = write(tmp_path, ending.join(["a,b", "1,2", "", "3,4", ""]))
        assert read(path) == [(1, 2, ["1", "2"]), (2, 4, ["3", "4"])]

    def test_values_are_exactly_as_written(self, tmp_path: Path) -> None:
        """No stripping and no NA guessing: spaces and NA-like strings are kept."""
        path = write(tmp_path, "a,b,c\n NA , null,\n")
        assert read(path) == [(1, 2, [" NA ", " null", ""])]

    def test_ragged_rows_are_yielded_as_they_are(self, tmp_path: Path) -> None:
        """Rows with too few or too many fields are left to the loader's policy."""
        path = write(tmp_path, "a,b\n1\n2,3,4\n")
        assert [r[2] for r in read(path)] == [["1"], ["2", "3", "4"]]

    def test_preamble_header_and_trailer_are_skipped(self, tmp_path: Path) -> None:
        """skip_rows lines, header_rows records and trailer_rows records are left out."""
        path = write(tmp_path, "Report\n\nGroup,\nid,n\n1,a\n\n2,b\nTotal,2\nEOF\n")
        detection = replace(CSV, skip_rows=2, header_rows=2, trailer_rows=2)
        assert read(path, detection) == [(1, 5, ["1", "a"]), (2, 7, ["2", "b"])]

    def test_header_only_file_yields_nothing(self, tmp_path: Path) -> None:
        """A header-only file has no records."""
        assert read(write(tmp_path, "a,b\n")) == []

    def test_no_header(self, tmp_path: Path) -> None:
        """With header_rows 0 the first record is data."""
        assert read(write(tmp_path, "1,2\n"), replace(CSV, header_rows=0)) == [(1, 1, ["1", "2"])]

    def test_quote_none_reads_quotes_as_data(self, tmp_path: Path) -> None:
        """With quotechar None a stray quote stays in its cell and swallows nothing."""
        path = write(tmp_path, 'a,b\n"x,1\n2,3\n')
        assert [r[2] for r in read(path, replace(CSV, quotechar=None))] == [['"x', "1"], ["2", "3"]]

    def test_backslash_escapes(self, tmp_path: Path) -> None:
        """An escape character and doublequote False read backslash-escaped quotes."""
        path = write(tmp_path, 'a,b\n"say \\"hi\\"",1\n')
        detection = replace(CSV, escapechar="\\", doublequote=False)
        assert read(path, detection)[0][2] == ['say "hi"', "1"]


class TestEncodings:
    def test_utf8_bom_is_not_part_of_the_first_name(self, tmp_path: Path) -> None:
        """The UTF-8 BOM is skipped, so it never sticks to a value."""
        path = write(tmp_path, b"\xef\xbb\xbfa,b\n1,2\n")
        assert read(path, replace(CSV, encoding="utf-8-sig", bom=True, header_rows=0))[0][2] == ["a", "b"]

    @pytest.mark.parametrize(("codec", "bom"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
    def test_utf16_with_bom(self, tmp_path: Path, codec: str, bom: bytes) -> None:
        """UTF-16 files are decoded incrementally after their BOM."""
        path = write(tmp_path, bom + "a,b\nZoë,€\n".encode(codec))
        assert read(path, replace(CSV, encoding=codec, bom=True)) == [(1, 2, ["Zoë", "€"])]

    def test_cp1252(self, tmp_path: Path) -> None:
        """A cp1252 file reads its euro signs and smart quotes."""
        path = write(tmp_path, "a,b\n“x”,3€\n".encode("cp1252"))
        assert read(path, replace(CSV, encoding="cp1252"))[0][2] == ["“x”", "3€"]

    def test_undecodable_byte_deep_inside_names_line_and_offset(self, tmp_path: Path) -> None:
        """In strict mode a bad byte past the first chunk fails with its exact line and byte offset."""
        good = "id,name\n" + "".join(f"{i},é{i}\n" for i in range(200000))
        data = good.encode() + b"200000,bad\xffbyte\n200001,ok\n"
        path = write(tmp_path, data)
        assert len(data) > 2 * CHUNK_BYTES
        with pytest.raises(DetectionError) as info:
            read(path)
        offset = data.index(b"\xff")
        assert info.value.details == {"offset": offset, "line": 200002}
        assert f"line 200002: bytes at offset {offset}" in str(info.value)

    def test_undecodable_byte_is_replaced_in_replace_mode(self, tmp_path: Path) -> None:
        """In replace mode a bad byte becomes U+FFFD and reading goes on."""
        path = write(tmp_path, b"a,b\n1,x\xffy\n2,z\n")
        assert [r[2] for r in read(path, decode_errors="replace")] == [["1", "x\ufffdy"], ["2", "z"]]

    def test_multibyte_character_across_chunks(self, tmp_path: Path) -> None:
        """A character split by the chunk boundary is decoded whole."""
        lines = "a\n" + "x" * 99 + "\n" + ("y" * 99 + "\n") * (CHUNK_BYTES // 100 - 1)
        prefix = lines + "z" * (CHUNK_BYTES - len(lines) - 1)
        path = write(tmp_path, prefix + "é\nlast\n")
        assert len(prefix.encode()) == CHUNK_BYTES - 1
        values = [r[2][0] for r in read(path)]
        assert values[-2:] == ["z" * (CHUNK_BYTES - len(lines) - 1) + "é", "last"]

    def test_crlf_across_chunks_is_one_line_break(self, tmp_path: Path) -> None:
        """A CRLF split by the chunk boundary counts as one line break."""
        lines = "a\r\n" + ("y" * 98 + "\r\n") * (CHUNK_BYTES // 100 - 1)
        first = lines + "x" * (CHUNK_BYTES - len(lines) - 1)
        path = write(tmp_path, first + "\r\nnext\r\n")
        assert len(first) == CHUNK_BYTES - 1
        rows = CHUNK_BYTES // 100 - 1
        assert read(path)[-1] == (rows + 2, rows + 3, ["next"])


class TestStreams:
    def test_non_seekable_stream_with_bom(self) -> None:
        """A binary stream that cannot seek is read from its current position, BOM skipped."""
        stream = NonSeekable(b"\xef\xbb\xbfa,b\n1,2\n")
        assert read(stream, replace(CSV, encoding="utf-8-sig", bom=True)) == [(1, 2, ["1", "2"])]

    def test_field_past_the_csv_limit_names_the_line(self, tmp_path: Path) -> None:
        """A quote that opens a field running past the csv field limit fails with the line."""
        path = write(tmp_path, 'a,b\n1,"' + "x" * 200_000 + "\n")
        with pytest.raises(DetectionError, match="line 2"):
            read(path)


class TestRuns:
    def test_a_ragged_record_spanning_lines_reports_its_first_line(self, tmp_path: Path) -> None:
        """A ragged record with a quoted line break comes alone, with the line it starts on."""
        path = write(tmp_path, 'a,b\n1,2\n\n3,"x\r\ny",extra\n4,5\n')
        items = list(iter_runs(path, replace(CSV, header_rows=1), width=2, size=10))
        assert items == [Run(1, [["1", "2"]]), Record(2, 4, ["3", "x\r\ny", "extra"]), Run(3, [["4", "5"]])]

    def test_runs_split_at_the_size_and_around_trailer_rows(self, tmp_path: Path) -> None:
        """Runs hold at most `size` rows; a trailer row is left out as with iter_records."""
        path = write(tmp_path, "a\n1\n2\n3\nTOTAL 3\n")
        detection = replace(CSV, header_rows=1, trailer_rows=1)
        items = list(iter_runs(path, detection, width=1, size=2))
        assert items == [Run(1, [["1"], ["2"]]), Run(3, [["3"]])]
