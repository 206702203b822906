"""detect() + the reader on the shapes real exports have (issue 16), one class per shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import Settings
from backend.detection import detect
from backend.errors import DetectionError, EmptyFileError
from backend.load.csv_python import Run, iter_records, iter_runs
from backend.models import Detection


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def write(tmp_path: Path, data: bytes | str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read(path: Path, settings: Settings, **options: object) -> tuple[Detection, list[list[str]]]:
    detection = detect(path, settings, **options)  # type: ignore[arg-type]
    return detection, [r.values for r in iter_records(path, detection)]


def staged(path: Path, detection: Detection) -> list[list[str]]:
    """The rows as the loader stages them (iter_runs, the fast path)."""
    out: list[list[str]] = []
    for item in iter_runs(path, detection, width=len(detection.headers), size=2):
        out.extend(item.rows if isinstance(item, Run) else [item.values])
    return out


class TestPaddedTitleRows:
    TEXT = (
        "Riverside District Council - Expenditure over 500 - October 2023,,,,,\n"
        ",,,,,\n"
        "Department,Cost Centre,Date Paid,Supplier,Net Amount,\n"
        "Housing,HX204,03/10/2023,Northway Builders Ltd,1520.00,\n"
        "Leisure,LS031,12/10/2023,Power Co,980.00,\n"
        "Corporate,CP001,17/10/2023,Civica UK,14250.00,\n"
    )

    def test_title_and_padded_blank_line_are_skipped_with_reasons(
        self, tmp_path: Path, settings: Settings
    ) -> None:
        """The padded title and delimiter-only line are skipped and reported; the header is line 3."""
        detection, rows = read(write(tmp_path, self.TEXT), settings)
        assert detection.skip_rows == 2
        assert [(s.line, s.reason) for s in detection.skipped_lines] == [
            (1, "title (one filled cell)"),
            (2, "only delimiters"),
        ]
        assert detection.headers == ("Department", "Cost Centre", "Date Paid", "Supplier", "Net Amount")
        assert rows[0] == ["Housing", "HX204", "03/10/2023", "Northway Builders Ltd", "1520.00"]

    def test_trailing_delimiter_column_is_dropped_on_both_read_paths(
        self, tmp_path: Path, settings: Settings
    ) -> None:
        """The empty field after the last delimiter is no column: both read paths give five values."""
        path = write(tmp_path, self.TEXT)
        detection, rows = read(path, settings)
        assert detection.dropped_trailing_columns == 1
        assert staged(path, detection) == rows and all(len(r) == 5 for r in rows)


class TestInstrumentHeaders:
    def test_metadata_wider_than_the_table_is_not_merged_into_the_header(
        self, tmp_path: Path, settings: Settings
    ) -> None:
        """Metadata lines of three fields above nm,Abs are skipped; no third empty column appears."""
        text = (
            "Exported by SpectraView 3.2,Sample B-17 measured Tuesday, March 5 2024\n"
            "nm,Abs\n200,1.98\n210,1.75\n220,1.20\n230,0.88\n"
        )
        detection, rows = read(write(tmp_path, text), settings)
        assert (detection.headers, detection.skip_rows) == (("nm", "Abs"), 1)
        assert rows == [["200", "1.98"], ["210", "1.75"], ["220", "1.20"], ["230", "0.88"]]


class TestTrailingDelimiters:
    def test_rows_with_a_trailing_delimiter_under_a_shorter_header(
        self, tmp_path: Path, settings: Settings
    ) -> None:
        """ "t","x","y" over 0.5,12.25,3.75, reads three values per row; no value gets a comma glued on."""
        text = '"t","x","y"\n0.5,12.25,3.75,\n1.0,12.50,3.70,\n1.5,12.81,3.62,\n'
        detection, rows = read(write(tmp_path, text), settings)
        assert (detection.headers, detection.dropped_trailing_columns) == (("t", "x", "y"), 1)
        assert rows == [["0.5", "12.25", "3.75"], ["1.0", "12.50", "3.70"], ["1.5", "12.81", "3.62"]]

    def test_a_value_after_the_trailing_delimiter_is_kept(self, tmp_path: Path, settings: Settings) -> None:
        """A row whose surplus field holds a value keeps it as a fourth value (the ragged policy decides)."""
        text = "t,x,y\n" + "".join(f"{i},1,2,\n" for i in range(8)) + "9,1,2,oops\n"
        path = write(tmp_path, text)
        detection, rows = read(path, settings)
        assert rows[-1] == ["9", "1", "2", "oops"] and staged(path, detection)[-1] == ["9", "1", "2", "oops"]

    def test_surplus_values_are_unnamed_columns(self, tmp_path: Path, settings: Settings) -> None:
        """Rows one field wider than the header, with values there, get an unnamed fifth column."""
        text = (
            "Ticket,Opened,Priority,Status\n"
            "INC-1,2024-02-01,P2,Closed,Rebooted\nINC-2,2024-02-01,P3,Closed,Duplicate\n"
        )
        detection, rows = read(write(tmp_path, text), settings)
        assert detection.headers == ("Ticket", "Opened", "Priority", "Status", "")
        assert detection.unnamed_columns == 1 and rows[0][-1] == "Rebooted"

    def test_header_that_lost_a_delimiter(self, tmp_path: Path, settings: Settings) -> None:
        """A header missing one delimiter keeps its names in order; the fourth column is unnamed."""
        text = (
            "Date,Product Qty,Unit Price\n"
            "2024-01-02,Widget,5,2.50\n2024-01-03,Gadget,12,7.25\n2024-01-04,Nut,3,0.10\n"
        )
        detection, rows = read(write(tmp_path, text), settings)
        assert detection.headers == ("Date", "Product Qty", "Unit Price", "")
        assert rows[0] == ["2024-01-02", "Widget", "5", "2.50"]


class TestStackedTables:
    TEXT = (
        "Region,Stores,Revenue\nNorth,14,1203400\nSouth,22,2011000\n\n"
        "Store,Region,Staff,Revenue\nN01,North,14,95100\nN02,North,11,78800\nS01,South,19,120400\n"
    )

    def test_refused_with_each_block_in_the_error_details(self, tmp_path: Path, settings: Settings) -> None:
        """Without a choice the file is refused; the error names and details every block."""
        with pytest.raises(DetectionError, match="stacked tables") as info:
            detect(write(tmp_path, self.TEXT), settings)
        assert [(b["first_line"], b["last_line"], b["width"]) for b in info.value.details["blocks"]] == [
            (1, 3, 3),
            (5, 8, 4),
        ]

    def test_first_reads_only_the_first_block(self, tmp_path: Path, settings: Settings) -> None:
        """stacked_tables=first reads the first table and stops at its last line."""
        detection, rows = read(write(tmp_path, self.TEXT), settings, stacked_tables="first")
        assert detection.headers == ("Region", "Stores", "Revenue") and detection.last_line == 3
        assert rows == [["North", "14", "1203400"], ["South", "22", "2011000"]]
        assert (detection.block, len(detection.blocks)) == (0, 2)

    def test_largest_reads_the_block_with_most_rows(self, tmp_path: Path, settings: Settings) -> None:
        """stacked_tables=largest skips to the second table's header and reads its rows."""
        path = write(tmp_path, self.TEXT)
        detection, rows = read(path, settings, stacked_tables="largest")
        assert (detection.skip_rows, detection.headers[0], detection.block) == (4, "Store", 1)
        assert rows[0] == ["N01", "North", "14", "95100"] and len(rows) == 3
        assert staged(path, detection) == rows

    def test_unknown_choice_is_a_programming_error(self, tmp_path: Path, settings: Settings) -> None:
        """Only first and largest are choices."""
        with pytest.raises(ValueError, match="stacked_tables"):
            detect(write(tmp_path, self.TEXT), settings, stacked_tables="biggest")


class TestHeaderOnlyAndHeaderless:
    def test_header_only_keeps_its_header(self, tmp_path: Path, settings: Settings) -> None:
        """A header-only file has its header and no rows."""
        detection, rows = read(write(tmp_path, "Supplier ID,Supplier Name,VAT Number\r\n"), settings)
        assert (detection.headers, rows) == (("Supplier ID", "Supplier Name", "VAT Number"), [])

    def test_headerless_says_no_header_was_found(self, tmp_path: Path, settings: Settings) -> None:
        """A file of typed rows has no header and a warning saying so."""
        detection, _ = read(
            write(tmp_path, "1,2024-01-31,18.5\n2,2024-02-29,18.9\n3,2024-03-31,19.0\n"), settings
        )
        assert detection.header_rows == 0
        assert any(w.startswith("no header found") for w in detection.warnings)

    def test_empty_file_is_still_refused(self, tmp_path: Path, settings: Settings) -> None:
        """A 0-byte file stays an EmptyFileError."""
        with pytest.raises(EmptyFileError):
            detect(write(tmp_path, b""), settings)


class TestDialects:
    def test_space_delimited_with_quoted_text(self, tmp_path: Path, settings: Settings) -> None:
        """Space-delimited rows whose text is quoted read as one field per quoted text."""
        text = (
            "date time qty sku description price\n"
            '2024-02-11 08:30 3 SKU-118 "Tea towel, blue" 4.50\n'
            '2024-02-11 08:42 1 SKU-204 "Mug" 6.00\n'
            '2024-02-11 09:17 1 SKU-310 "Apron, striped red" 12.99\n'
        )
        detection, rows = read(write(tmp_path, text), settings)
        assert detection.delimiter == " "
        assert rows[0] == ["2024-02-11", "08:30", "3", "SKU-118", "Tea towel, blue", "4.50"]

    def test_single_quote_quoting(self, tmp_path: Path, settings: Settings) -> None:
        """Fields quoted with ' (doubled inside) read without their quotes."""
        text = "'id','name','city'\n1,'O''Brien, Pat','Cork'\n2,'Smith, Jane','Leeds'\n3,'Lee','Seoul'\n"
        detection, rows = read(write(tmp_path, text), settings)
        assert detection.quotechar == "'" and rows[0] == ["1", "O'Brien, Pat", "Cork"]

    def test_excel_sep_hint_decides_and_is_skipped(self, tmp_path: Path, settings: Settings) -> None:
        """sep=, names the delimiter though the cells are full of semicolons, and is skipped."""
        text = "sep=,\nPart;Rev,Description,Qty\nA-1;3,Bolt; zinc,100\nA-2;1,Nut; steel,250\n"
        detection, rows = read(write(tmp_path, text), settings)
        assert detection.delimiter == "," and detection.headers == ("Part;Rev", "Description", "Qty")
        assert detection.skipped_lines[0].reason == "Excel delimiter hint (sep=,)"
        assert rows == [["A-1;3", "Bolt; zinc", "100"], ["A-2;1", "Nut; steel", "250"]]

    def test_mac_roman_with_cr_line_ends(self, tmp_path: Path, settings: Settings) -> None:
        """CR-only line ends with 8-bit text are Excel's CSV (Macintosh): Mac Roman."""
        text = "Name,City\rRené Dupré,Genève\rJosé Núñez,Málaga\rZoë Ångström,Malmö\r"
        detection, rows = read(write(tmp_path, text.encode("mac_roman")), settings)
        assert detection.encoding == "mac-roman" and rows[0] == ["René Dupré", "Genève"]


class TestShortCodeHeaders:
    @pytest.mark.parametrize(
        "text",
        [
            "ISO,Country\nDEU,Germany\nFRA,France\nITA,Italy\nESP,Spain\n",
            "ICAO,Airport\nEDDF,Frankfurt\nEGLL,London Heathrow\nLFPG,Paris\nEHAM,Amsterdam\n",
            "ccy,name\nEUR,Euro\nUSD,US Dollar\nGBP,Pound Sterling\nJPY,Yen\n",
            "st,state\nCA,California\nTX,Texas\nNY,New York\nFL,Florida\n",
            "country,2023\nGermany,84482267\nFrance,68170228\nItaly,58761146\nSpain,48373336\n",
            "id,1,2,3\nA17,0.12,0.53,0.97\nB02,0.44,0.08,0.61\nC33,0.91,0.27,0.35\n",
        ],
    )
    def test_short_code_header_is_a_header(self, tmp_path: Path, settings: Settings, text: str) -> None:
        """A header of short codes, a single year or item numbers is found as the header."""
        detection, rows = read(write(tmp_path, text), settings)
        assert detection.header_rows == 1 and list(detection.headers) == text.splitlines()[0].split(",")
        assert len(rows) == len(text.splitlines()) - 1

    def test_a_code_of_the_columns_form_is_data(self, tmp_path: Path, settings: Settings) -> None:
        """k1, over k2,5 / k3,6 / k4,7 is a first data row (a code like the others), not a header."""
        detection, rows = read(write(tmp_path, "k1,\nk2,5\nk3,6\nk4,7\n"), settings)
        assert (detection.header_rows, rows[0]) == (0, ["k1", ""])

    def test_header_can_be_forced_on(self, tmp_path: Path, settings: Settings) -> None:
        """header=True makes the first row the header even when it looks like data."""
        detection, rows = read(write(tmp_path, "1,2\n3,4\n5,6\n"), settings, header=True)
        assert (detection.headers, detection.header_forced, rows) == (
            ("1", "2"),
            True,
            [["3", "4"], ["5", "6"]],
        )

    def test_header_can_be_forced_off(self, tmp_path: Path, settings: Settings) -> None:
        """header=False reads every row as data, the first one included."""
        detection, rows = read(
            write(tmp_path, "DEU,Germany\nFRA,France\nITA,Italy\n"), settings, header=False
        )
        assert (detection.header_rows, rows[0]) == (0, ["DEU", "Germany"])


class TestTrailers:
    def test_rows_named_sum_and_count_are_loaded(self, tmp_path: Path, settings: Settings) -> None:
        """metric,weight with rows sum,3 and count,2 keeps all four rows."""
        detection, rows = read(
            write(tmp_path, "metric,weight\nlatency,10\nerrors,5\nsum,3\ncount,2\n"), settings
        )
        assert (detection.trailer_rows, len(rows)) == (0, 4)

    def test_matching_totals_row_is_dropped_and_reported(self, tmp_path: Path, settings: Settings) -> None:
        """A Total row equal to the column sums is dropped, reported with its line and reason."""
        text = "Invoice,Net,VAT\nA,100.00,20.00\nB,250.50,50.10\nTotal,350.50,70.10\n"
        detection, rows = read(write(tmp_path, text), settings)
        assert [(s.line, s.text) for s in detection.trailer_lines] == [(4, "Total,350.50,70.10")]
        assert rows == [["A", "100.00", "20.00"], ["B", "250.50", "50.10"]]

    def test_trailer_detection_can_be_turned_off(self, tmp_path: Path, settings: Settings) -> None:
        """trailer_detection=False loads a trailer record as a row."""
        text = "a,b,c\n1,2,3\n4,5,6\nEOF\n"
        detection, rows = read(write(tmp_path, text), settings, trailer_detection=False)
        assert (detection.trailer_rows, rows[-1]) == (0, ["EOF"])


class TestOneColumnBlankLines:
    def test_blank_line_is_an_empty_value(self, tmp_path: Path, settings: Settings) -> None:
        """In a one-column file a blank line between rows is a row with one empty value."""
        path = write(tmp_path, "email\r\nanna@x.org\r\n\r\nbob@y.net\r\n\r\n\r\ncarol@z.com\r\n")
        detection, rows = read(path, settings)
        assert detection.blank_lines_are_values
        assert rows == [["anna@x.org"], [""], ["bob@y.net"], [""], [""], ["carol@z.com"]]
        assert staged(path, detection) == rows and detection.sample_rows == 6

    def test_blank_lines_at_the_end_are_not_rows(self, tmp_path: Path, settings: Settings) -> None:
        """Blank lines after the last value are not rows, and detect says so."""
        detection, rows = read(write(tmp_path, "name\nAnna\nBob\n\n\n"), settings)
        assert rows == [["Anna"], ["Bob"]]
        assert any("2 blank lines at the end" in w for w in detection.warnings)

    def test_blank_lines_still_separate_nothing_in_wider_files(
        self, tmp_path: Path, settings: Settings
    ) -> None:
        """In a two-column file a blank line is still no row."""
        detection, rows = read(write(tmp_path, "a,b\n1,2\n\n3,4\n"), settings)
        assert not detection.blank_lines_are_values and rows == [["1", "2"], ["3", "4"]]
