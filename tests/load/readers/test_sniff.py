"""Format detection: magic bytes first, the name second, mismatches reported."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import tarfile
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter
import xlwt
import zstandard
from msoffcrypto.format.ooxml import OOXMLFile

from backend.errors import EmptyFileError
from backend.load.readers.errors import ArchiveLayoutError, EncryptedFileError, UnsupportedFormatError
from backend.load.readers.formats import Compression, Format
from backend.load.readers.sniff import HEAD_BYTES, detect_format, detect_inner

CSV = b"id,name\n1,Namibia\n2,North America\n"


def head(data: bytes) -> bytes:
    return data[:HEAD_BYTES]


def xlsxwriter_bytes() -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    workbook.add_worksheet("S").write_row(0, 0, ["a", "b"])
    workbook.close()
    return buffer.getvalue()


def rezip(data: bytes, replace: tuple[bytes, bytes]) -> bytes:
    """The same package with one string replaced in [Content_Types].xml."""
    source, buffer = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "[Content_Types].xml":
                content = content.replace(*replace)
            target.writestr(info.filename, content)
    return buffer.getvalue()


class TestWorkbooks:
    def test_xlsx_from_openpyxl_is_xlsx(self, small_xlsx):
        """openpyxl writes its content types last; the xl/ members still say xlsx."""
        guess = detect_format(head(small_xlsx), "countries.xlsx")
        assert (guess.format, guess.compression, guess.mismatch) == (Format.XLSX, None, None)
        assert guess.table_name == "countries"

    def test_xlsx_from_xlsxwriter_is_xlsx_by_its_content_types(self):
        """xlsxwriter writes [Content_Types].xml first; its spreadsheet type decides."""
        assert detect_format(head(xlsxwriter_bytes()), "a.xlsx").format is Format.XLSX

    def test_macro_enabled_content_type_is_xlsm(self):
        """The macroEnabled main part content type makes the package an xlsm."""
        data = rezip(
            xlsxwriter_bytes(),
            (b"spreadsheetml.sheet.main+xml", b"ms-excel.sheet.macroEnabled.main+xml"),
        )
        assert detect_format(head(data), "a.xlsm").format is Format.XLSM

    def test_xlsx_renamed_csv_is_read_as_xlsx_and_the_mismatch_is_reported(self, small_xlsx):
        """An xlsx named .csv is detected as xlsx, and the mismatch names both."""
        guess = detect_format(head(small_xlsx), "countries.csv")
        assert guess.format is Format.XLSX
        assert guess.mismatch is not None and "xlsx" in guess.mismatch and "countries.csv" in guess.mismatch

    def test_word_document_is_refused_not_taken_for_a_zip(self):
        """A docx is an OOXML package but not a workbook: refused with what it is."""
        data = rezip(
            xlsxwriter_bytes(), (b"spreadsheetml.sheet.main+xml", b"wordprocessingml.document.main+xml")
        )
        with pytest.raises(UnsupportedFormatError, match="Word document"):
            detect_format(head(data), "a.xlsx")

    def test_legacy_xls_from_xlwt_is_xls(self):
        """An OLE compound file with a Workbook stream is a legacy .xls."""
        workbook = xlwt.Workbook()
        workbook.add_sheet("S").write(0, 0, "a")
        buffer = io.BytesIO()
        workbook.save(buffer)
        assert detect_format(head(buffer.getvalue()), "a.xls").format is Format.XLS

    def test_encrypted_xlsx_is_refused_with_how_to_fix_it(self, small_xlsx):
        """A password-protected xlsx (an OLE file with EncryptionInfo) is refused with a clear reason."""
        encrypted = io.BytesIO()
        OOXMLFile(io.BytesIO(small_xlsx)).encrypt("secret", encrypted)
        with pytest.raises(EncryptedFileError, match="password"):
            detect_format(head(encrypted.getvalue()), "prices.xlsx")


class TestTextFormats:
    def test_plain_text_is_csv(self):
        """Text that is not JSON is left to the CSV detection."""
        assert detect_format(CSV, "a.csv").format is Format.CSV

    def test_bracketed_sql_server_header_is_csv_not_json(self):
        """A header like [id],[name] starts with '[' but is no JSON array."""
        assert detect_format(b"[id],[name]\n1,x\n", "a.csv").format is Format.CSV

    def test_array_of_objects_is_json(self):
        """A top-level array of objects (after a BOM and whitespace) is JSON."""
        data = b"\xef\xbb\xbf \n[\n  " + json.dumps({"a": 1}).encode() + b"]"
        assert detect_format(data, "a.json").format is Format.JSON

    def test_one_object_per_line_is_ndjson_even_when_named_json(self):
        """Lines that each hold an object are NDJSON; a .json name is reported as a mismatch."""
        data = b'{"a": 1}\n{"a": 2}\n'
        named_right = detect_format(data, "a.jsonl")
        assert (named_right.format, named_right.mismatch) == (Format.NDJSON, None)
        guess = detect_format(data, "a.json")
        assert guess.format is Format.NDJSON and guess.mismatch is not None

    def test_single_object_over_several_lines_is_json(self):
        """A pretty-printed object is JSON (the reader then says it wants an array)."""
        assert detect_format(b'{\n  "a": 1\n}\n', "a.json").format is Format.JSON

    def test_ndjson_whose_first_line_is_longer_than_the_sample_follows_its_name(self):
        """A single line longer than the sample is NDJSON when the name says so."""
        data = b'{"a": "' + b"x" * HEAD_BYTES
        assert detect_format(head(data), "big.ndjson").format is Format.NDJSON

    def test_parquet_from_pyarrow_is_parquet(self):
        """A file starting with PAR1 is Parquet."""
        buffer = io.BytesIO()
        pq.write_table(pa.table({"a": [1]}), buffer)
        assert detect_format(head(buffer.getvalue()), "a.parquet").format is Format.PARQUET


class TestCompressed:
    @pytest.mark.parametrize(
        ("compress", "suffix", "compression"),
        [
            (gzip.compress, ".gz", Compression.GZIP),
            (bz2.compress, ".bz2", Compression.BZIP2),
            (lambda d: zstandard.ZstdCompressor().compress(d), ".zst", Compression.ZSTD),
        ],
    )
    def test_compressed_csv_names_the_inner_file_and_the_table(self, compress, suffix, compression):
        """countries.csv.gz is gzip around CSV, inner name countries.csv, table countries."""
        guess = detect_format(head(compress(CSV)), "countries.csv" + suffix)
        assert (guess.format, guess.compression) == (Format.CSV, compression)
        assert (guess.inner_name, guess.table_name, guess.mismatch) == ("countries.csv", "countries", None)

    def test_compressed_json_is_recognised_from_the_decompressed_sample(self):
        """The gzip sample is inflated, so NDJSON inside is found even under a .gz-only name."""
        guess = detect_format(gzip.compress(b'{"a": 1}\n{"a": 2}\n'), "events.gz")
        assert (guess.format, guess.table_name) == (Format.NDJSON, "events")

    def test_zip_of_one_csv_names_its_member(self):
        """A plain zip is a compression layer; the first member names the inner file."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("export/countries_2024.csv", CSV)
        guess = detect_format(head(buffer.getvalue()), "countries.zip")
        assert (guess.format, guess.compression, guess.inner_name) == (
            Format.CSV,
            Compression.ZIP,
            "countries_2024.csv",
        )
        assert guess.table_name == "countries"

    def test_gzip_named_csv_is_detected_and_reported(self):
        """A gzip file without .gz in its name is still gzip; the name mismatch is reported."""
        guess = detect_format(gzip.compress(CSV), "countries.csv")
        assert guess.compression is Compression.GZIP and guess.mismatch is not None

    def test_workbook_inside_gzip_is_refused(self, small_xlsx):
        """An xlsx needs random access, so xlsx.gz is refused with what to drop instead."""
        with pytest.raises(UnsupportedFormatError, match="uncompressed"):
            detect_format(head(gzip.compress(small_xlsx)), "a.xlsx.gz")

    def test_double_compression_is_refused(self):
        """gzip around gzip is refused rather than unwrapped twice."""
        with pytest.raises(UnsupportedFormatError, match="compressed twice"):
            detect_format(gzip.compress(gzip.compress(CSV)), "a.csv.gz.gz")

    def test_inner_format_is_confirmed_from_the_decompressed_bytes(self):
        """detect_inner re-decides from real decompressed bytes and keeps the table name."""
        guess = detect_format(head(bz2.compress(CSV)), "countries.json.bz2")
        confirmed = detect_inner(guess, b'[{"a": 1}]')
        assert (confirmed.format, confirmed.table_name, confirmed.mismatch) == (
            Format.JSON,
            "countries",
            None,
        )


class TestRefusals:
    def test_empty_file_is_refused_as_empty(self):
        """Zero bytes are an empty file, not an unknown format."""
        with pytest.raises(EmptyFileError):
            detect_format(b"", "a.csv")

    def test_unknown_binary_is_refused_with_the_offset_of_a_nul_byte(self):
        """Bytes with NULs and no known signature are refused, saying why."""
        with pytest.raises(UnsupportedFormatError, match="NUL byte at offset 3"):
            detect_format(b"\x01\x02\x03\x00\x05" * 100, "a.csv")

    def test_utf16_text_without_bom_is_not_mistaken_for_binary(self):
        """UTF-16 text has NULs at every other byte and goes on to the CSV detection."""
        assert detect_format("id,name\n1,x\n".encode("utf-16-le"), "a.csv").format is Format.CSV

    def test_known_binary_formats_are_refused_by_name(self):
        """A PNG renamed .csv is refused as a PNG image."""
        with pytest.raises(UnsupportedFormatError, match="PNG"):
            detect_format(b"\x89PNG\r\n\x1a\n" + bytes(100), "a.csv")

    def test_tar_archive_is_refused(self):
        """A tar has no single data file to load and is refused."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo("a.csv")
            info.size = len(CSV)
            archive.addfile(info, io.BytesIO(CSV))
        with pytest.raises(UnsupportedFormatError, match="tar"):
            detect_format(head(buffer.getvalue()), "a.tar")

    def test_zip_of_only_a_folder_is_refused(self):
        """A zip whose sample holds no data member is refused."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("folder/", b"")
        with pytest.raises(ArchiveLayoutError):
            detect_format(buffer.getvalue(), "a.zip")
