"""Excel reader: cells as the text Excel shows, sheets, headers, refusals and bounded memory."""

from __future__ import annotations

import datetime
import io
import subprocess
import sys
import zipfile

import openpyxl
import pytest
import xlsxwriter
import xlwt
from msoffcrypto.format.ooxml import OOXMLFile
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from backend.errors import RowError
from backend.load.readers.errors import (
    DamagedFileError,
    DecompressionBombError,
    EncryptedFileError,
    SheetNotFoundError,
)
from backend.load.readers.excel import ExcelWorkbook
from backend.load.readers.formats import Format
from tests.load.readers.conftest import openpyxl_bytes


def workbook(data: bytes, fmt: Format = Format.XLSX) -> ExcelWorkbook:
    return ExcelWorkbook(io.BytesIO(data), name="book.xlsx", fmt=fmt)


def rows(data: bytes, **kwargs) -> list[list[str]]:
    with workbook(data) as book:
        return list(book.iter_rows(**kwargs))


def xlsxwriter_bytes(write, **options) -> bytes:
    """An .xlsx written by xlsxwriter: `write(workbook, worksheet)` fills the first sheet."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, **options})
    write(book, book.add_worksheet("Data"))
    book.close()
    return buffer.getvalue()


class TestCellsFromOpenpyxl:
    def test_each_type_loads_as_the_text_excel_shows(self):
        """Integers, decimals, text, booleans, dates, datetimes and times read back as ISO/plain text."""
        data = openpyxl_bytes(
            [
                ["int", "float", "text", "bool", "date", "datetime", "time"],
                [
                    42,
                    0.1,
                    "007",
                    True,
                    datetime.date(2024, 1, 31),
                    datetime.datetime(2024, 1, 31, 8, 30),
                    datetime.time(8, 30, 5),
                ],
                [
                    -7,
                    1 / 3,
                    " padded ",
                    False,
                    datetime.date(1999, 12, 31),
                    datetime.datetime(2024, 2, 29, 23, 59, 59, 250000),
                    datetime.time(0, 0),
                ],
            ]
        )
        assert rows(data)[1:] == [
            ["42", "0.1", "007", "true", "2024-01-31", "2024-01-31 08:30:00", "08:30:05"],
            [
                "-7",
                "0.333333333333333",
                " padded ",
                "false",
                "1999-12-31",
                "2024-02-29 23:59:59.250",
                "00:00:00",
            ],
        ]

    def test_number_formats_other_than_dates_do_not_change_the_value(self):
        """A percentage or two-decimal format shows decoration; the loaded value is the number."""
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append([0.125, 1.5])
        sheet["A1"].number_format = "0.0%"
        sheet["B1"].number_format = "0.00"
        buffer = io.BytesIO()
        book.save(buffer)
        assert rows(buffer.getvalue()) == [["0.125", "1.5"]]

    def test_duration_format_loads_as_elapsed_hours(self):
        """A [h]:mm:ss cell holding 1.5 days loads as 36:00:00, not as a date."""
        book = openpyxl.Workbook()
        book.active["A1"] = 1.5
        book.active["A1"].number_format = "[h]:mm:ss"
        buffer = io.BytesIO()
        book.save(buffer)
        assert rows(buffer.getvalue()) == [["36:00:00"]]

    def test_1904_workbooks_keep_their_dates(self):
        """A workbook on the Mac 1904 calendar gives the same ISO dates as one on 1900."""
        book = openpyxl.Workbook()
        book.epoch = CALENDAR_MAC_1904
        book.active.append([datetime.date(2024, 1, 31)])
        buffer = io.BytesIO()
        book.save(buffer)
        assert rows(buffer.getvalue()) == [["2024-01-31"]]

    def test_merged_header_shows_its_value_in_the_top_left_cell_only(self):
        """A merged range has its value in the first cell and "" in the cells it covers."""
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(["Prices 2024", None, None])
        sheet.append(["code", "name", "price"])
        sheet.merge_cells("A1:C1")
        buffer = io.BytesIO()
        book.save(buffer)
        assert rows(buffer.getvalue()) == [["Prices 2024"], ["code", "name", "price"]]

    def test_empty_rows_are_skipped_and_row_numbers_kept(self):
        """Blank rows are no rows; each row keeps its sheet row number; inner gaps are ""."""
        data = openpyxl_bytes([["a", "b", "c"], [], [None, None, None], ["1", None, "3"], ["x", None, None]])
        with workbook(data) as book:
            numbered = [(row.number, row.cells) for row in book.iter_numbered_rows()]
        assert numbered == [(1, ["a", "b", "c"]), (4, ["1", "", "3"]), (5, ["x"])]


class TestCellsFromXlsxwriter:
    def test_formulas_load_as_their_cached_values_without_float_noise(self):
        """Cached results load as shown: 0.1+0.2 is 0.3, errors and text results verbatim."""

        def write(book, sheet):
            sheet.write_row(0, 0, ["sum", "error", "text", "flag"])
            sheet.write_formula(1, 0, "=0.1+0.2", None, 0.1 + 0.2)
            sheet.write_formula(1, 1, "=NA()", None, "#N/A")
            sheet.write_formula(1, 2, '="a"&"b"', None, "ab")
            sheet.write_formula(1, 3, "=TRUE()", None, True)

        assert rows(xlsxwriter_bytes(write))[1] == ["0.3", "#N/A", "ab", "true"]

    def test_inline_strings_and_formatted_dates_of_constant_memory_mode(self):
        """constant_memory writes inline strings; text, dates and numbers still read exactly."""

        def write(book, sheet):
            day = book.add_format({"num_format": "dd/mm/yyyy"})
            stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
            sheet.write_row(0, 0, ["code", "day", "stamp", "amount", "big"])
            sheet.write_string(1, 0, "00042")
            sheet.write_datetime(1, 1, datetime.datetime(2024, 1, 31), day)
            sheet.write_datetime(1, 2, datetime.datetime(2024, 1, 31, 8, 30), stamp)
            sheet.write_number(1, 3, 1234.5)
            sheet.write_number(1, 4, 1e21)

        data = xlsxwriter_bytes(write, constant_memory=True)
        assert rows(data)[1] == ["00042", "2024-01-31", "2024-01-31 08:30:00", "1234.5", "1E+21"]


class TestSheets:
    def test_sheet_names_in_order_without_chart_sheets(self):
        """sheet_names lists worksheets in workbook order; a chart sheet is left out."""
        buffer = io.BytesIO()
        book = xlsxwriter.Workbook(buffer, {"in_memory": True})
        book.add_worksheet("First").write_column(0, 0, [1, 2])
        chart = book.add_chart({"type": "column"})
        chart.add_series({"values": "=First!$A$1:$A$2"})
        book.add_chartsheet("Chart").set_chart(chart)
        book.add_worksheet("Second")
        book.close()
        with workbook(buffer.getvalue()) as opened:
            assert opened.sheet_names() == ["First", "Second"]

    def test_sheet_is_chosen_by_name_or_index(self):
        """A sheet: policy by name or 0-based index reads that sheet."""
        data = openpyxl_bytes([["main"]], extra_sheets=("Other",))
        assert rows(data, sheet="Other") == [["Other"]]
        assert rows(data, sheet=1) == [["Other"]]
        assert rows(data, sheet=0) == [["main"]]

    def test_default_sheet_is_the_first_visible_one(self):
        """With the first sheet hidden, the default is the first sheet a user sees."""
        book = openpyxl.Workbook()
        book.active.title = "Hidden"
        book.active["A1"] = "hidden"
        book.active.sheet_state = "hidden"
        book.create_sheet("Shown")["A1"] = "shown"
        buffer = io.BytesIO()
        book.save(buffer)
        assert rows(buffer.getvalue()) == [["shown"]]

    def test_unknown_sheet_is_refused_listing_the_sheets(self):
        """Asking for a sheet that does not exist names the sheets there are."""
        data = openpyxl_bytes([["x"]], title="Prices", extra_sheets=("Notes",))
        with pytest.raises(SheetNotFoundError, match="'Prices', 'Notes'"):
            rows(data, sheet="Missing")
        with pytest.raises(SheetNotFoundError):
            rows(data, sheet=5)


class TestBatches:
    def test_batches_hold_the_rows_below_the_header_as_strings(self):
        """Header cells name the columns; every value is a string; batches are bounded."""
        data = openpyxl_bytes([["id", "name"]] + [[i, f"n{i}"] for i in range(5)])
        with workbook(data) as book:
            batches = list(book.iter_batches(batch_rows=2))
        assert [b.num_rows for b in batches] == [2, 2, 1]
        assert batches[0].schema.names == ["id", "name"]
        assert all(str(field.type) == "string" for field in batches[0].schema)
        assert batches[2].to_pylist() == [{"id": "4", "name": "n4"}]

    def test_title_rows_are_skipped_by_the_header_position(self):
        """header_row=1 takes the second non-empty row as header and skips the title."""
        data = openpyxl_bytes([["Report"], [], ["a", "b"], [1, None]])
        with workbook(data) as book:
            assert next(book.iter_batches(header_row=1)).to_pylist() == [{"a": "1", "b": ""}]

    def test_without_header_columns_are_named_by_letter(self):
        """header_row=None loads every row, columns named A, B, ..."""
        with workbook(openpyxl_bytes([[1, 2], [3, 4]])) as book:
            assert next(book.iter_batches(header_row=None)).to_pylist() == [
                {"A": "1", "B": "2"},
                {"A": "3", "B": "4"},
            ]

    def test_header_only_sheet_gives_one_empty_batch_with_the_names(self):
        """A sheet with a header and no rows still tells the columns."""
        with workbook(openpyxl_bytes([["a", "b"]])) as book:
            (batch,) = book.iter_batches()
        assert (batch.num_rows, batch.schema.names) == (0, ["a", "b"])

    def test_value_right_of_the_header_is_refused_with_its_row(self):
        """A cell beyond the last header column is a ragged row, reported with its row number."""
        with (
            workbook(openpyxl_bytes([["a"], [1], [2, "stray"]])) as book,
            pytest.raises(RowError, match="row 3") as raised,
        ):
            list(book.iter_batches())
        assert raised.value.rows == (3,)


def rezip(data: bytes, member: str, edit) -> bytes:
    source, buffer = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info.filename, edit(content) if info.filename == member else content)
    return buffer.getvalue()


class TestRefusals:
    def test_encrypted_xlsx_is_refused_as_password_protected(self, small_xlsx):
        """An xlsx encrypted with a password (OLE container) is refused before any read."""
        encrypted = io.BytesIO()
        OOXMLFile(io.BytesIO(small_xlsx)).encrypt("secret", encrypted)
        with pytest.raises(EncryptedFileError, match="password"):
            workbook(encrypted.getvalue(), Format.XLS)

    def test_package_whose_sheet_inflates_beyond_the_ratio_is_refused(self, small_xlsx):
        """A sheet part declaring 64 MiB from a few KB is a bomb, refused before parsing."""
        data = rezip(small_xlsx, "xl/worksheets/sheet1.xml", lambda content: content + b" " * (64 << 20))
        with pytest.raises(DecompressionBombError, match="declare"):
            workbook(data)

    def test_row_numbered_beyond_excel_limit_is_refused(self, small_xlsx):
        """A row numbered past 1,048,576 was not written by Excel and is refused, not padded."""
        data = rezip(small_xlsx, "xl/worksheets/sheet1.xml", lambda c: c.replace(b'r="2"', b'r="2000000"'))
        with pytest.raises(DamagedFileError, match="2,000,000"):
            rows(data)

    def test_entity_expansion_in_a_sheet_is_refused(self, small_xlsx):
        """A sheet with a DTD defining entities (billion laughs) is refused, not expanded."""
        doctype = b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'

        def add_dtd(content: bytes) -> bytes:
            declaration_end = content.find(b"?>") + 2 if content.startswith(b"<?xml") else 0
            return content[:declaration_end] + doctype + content[declaration_end:]

        data = rezip(small_xlsx, "xl/worksheets/sheet1.xml", add_dtd)
        with pytest.raises(DamagedFileError, match="EntitiesForbidden"):
            rows(data)

    def test_damaged_package_is_refused(self, small_xlsx):
        """A truncated xlsx is refused as damaged or incomplete."""
        with pytest.raises(DamagedFileError):
            workbook(small_xlsx[: len(small_xlsx) // 2])


class TestLegacyXls:
    def test_xls_written_by_xlwt_reads_with_the_same_rules(self):
        """A .xls from xlwt gives text, numbers, booleans and dates as the xlsx path does."""
        book = xlwt.Workbook()
        sheet = book.add_sheet("Legacy")
        date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
        for column, value in enumerate(["code", "amount", "whole", "flag", "day"]):
            sheet.write(0, column, value)
        sheet.write(1, 0, "007")
        sheet.write(1, 1, 0.1)
        sheet.write(1, 2, 42)
        sheet.write(1, 3, True)
        sheet.write(1, 4, datetime.date(2024, 1, 31), date_style)
        buffer = io.BytesIO()
        book.save(buffer)
        with workbook(buffer.getvalue(), Format.XLS) as opened:
            assert opened.sheet_names() == ["Legacy"]
            assert list(opened.iter_rows()) == [
                ["code", "amount", "whole", "flag", "day"],
                ["007", "0.1", "42", "true", "2024-01-31"],
            ]


@pytest.mark.soak
def test_full_height_sheet_streams_in_bounded_memory(tmp_path):
    """A sheet of 1,048,576 rows is read to the end in a process staying under 200 MB."""
    path = tmp_path / "tall.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["id", "code"])
    for row in range(1, 1_048_576):
        sheet.write_number(row, 0, row)
        sheet.write_string(row, 1, f"C{row % 1000:04d}")
    book.close()
    # VmHWM, not ru_maxrss: the latter includes the RSS of the test process forked before exec.
    script = (
        "import sys\n"
        "from backend.load.readers.excel import ExcelWorkbook\n"
        "with open(sys.argv[1], 'rb') as f:\n"
        "    n = sum(b.num_rows for b in ExcelWorkbook(f, name='tall.xlsx').iter_batches(batch_rows=10000))\n"
        "peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1]\n"
        "print(n, int(peak) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    count, peak_mb = map(int, out.stdout.split())
    assert count == 1_048_575
    assert peak_mb < 200
