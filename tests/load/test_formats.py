"""Excel, JSON, NDJSON, Parquet and compressed files through the one load path (issue 17).

Every file is written by its own ecosystem's tool (xlsxwriter, xlwt, pyarrow, the json and
gzip/zipfile modules), loaded by `load_file` on SQLite and PostgreSQL, and exported back: the
cells must be the text a user sees, and the tracking row must say what the format was.
"""

from __future__ import annotations

import bz2
import datetime
import gzip
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import xlsxwriter
import xlwt

from backend.errors import FileRejectedError
from backend.load.loader import load_file
from backend.load.readers.errors import (
    ArchiveLayoutError,
    DecompressionBombError,
    SheetNotFoundError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from backend.models import LoadRequest, LoadType, TypePolicy
from tests.support import export_rows, kept_versions, make_settings, open_db, version_count

HEADER = ["code", "amount", "day", "note"]
#: What every format below holds, as the exported text must show it: leading zeros kept,
#: 0.1 without float noise, dates as ISO text, an empty cell empty.
EXPECTED = [
    HEADER,
    ["007", "0.1", "2024-01-31", "first"],
    ["010", "2.5", "2023-12-01", ""],
    ["100", "42", "2020-02-29", "ünïcode, with comma"],
]


def tracking_row(db, tracking_id: int) -> dict:
    t = db.catalog.tracking
    with db.read() as conn:
        return dict(conn.execute(sa.select(t).where(t.c.id == tracking_id)).one()._mapping)


def write_xlsx(path: Path, *, title_row: bool = False, sheets: tuple[str, ...] = ("Data",)) -> Path:
    """An .xlsx written by xlsxwriter: text codes, float, real date cells, an empty cell."""
    book = xlsxwriter.Workbook(str(path))
    date_format = book.add_format({"num_format": "yyyy-mm-dd"})
    for name in sheets:
        sheet = book.add_worksheet(name)
        top = 0
        if title_row:
            sheet.write_string(0, 0, "Monthly codes report")
            top = 2
        sheet.write_row(top, 0, HEADER)
        for i, (code, amount, day, note) in enumerate(
            [
                ("007", 0.1, datetime.date(2024, 1, 31), "first"),
                ("010", 2.5, datetime.date(2023, 12, 1), None),
                ("100", 42, datetime.date(2020, 2, 29), "ünïcode, with comma"),
            ],
            start=top + 1,
        ):
            sheet.write_string(i, 0, code)
            sheet.write_number(i, 1, amount)
            sheet.write_datetime(i, 2, datetime.datetime.combine(day, datetime.time()), date_format)
            if note is not None:
                sheet.write_string(i, 3, note)
    book.close()
    return path


def write_xlsm(path: Path) -> Path:
    """An .xlsm: the xlsx above with the macro-enabled workbook content type Excel gives it."""
    plain = write_xlsx(path.with_name(path.name + ".xlsx"))
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "[Content_Types].xml":
                data = data.replace(
                    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                    b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
                )
                assert b"macroEnabled" in data
            target.writestr(item, data)
    plain.unlink()
    return path


def write_xls(path: Path) -> Path:
    """A legacy .xls written by xlwt."""
    book = xlwt.Workbook()
    sheet = book.add_sheet("Data")
    date_style = xlwt.easyxf(num_format_str="yyyy-mm-dd")
    for j, name in enumerate(HEADER):
        sheet.write(0, j, name)
    for i, (code, amount, day, note) in enumerate(
        [
            ("007", 0.1, datetime.date(2024, 1, 31), "first"),
            ("010", 2.5, datetime.date(2023, 12, 1), ""),
            ("100", 42, datetime.date(2020, 2, 29), "ünïcode, with comma"),
        ],
        start=1,
    ):
        sheet.write(i, 0, code)
        sheet.write(i, 1, amount)
        sheet.write(i, 2, day, date_style)
        if note:
            sheet.write(i, 3, note)
    book.save(str(path))
    return path


def json_objects() -> list[dict]:
    return [
        {"code": "007", "amount": Decimal("0.1"), "day": "2024-01-31", "note": "first"},
        {"code": "010", "amount": Decimal("2.5"), "day": "2023-12-01", "note": ""},
        {"code": "100", "amount": 42, "day": "2020-02-29", "note": "ünïcode, with comma"},
    ]


def _dumps(value: object) -> str:
    # Decimal written as its digits, the way a JSON exporter of exact numbers writes them.
    return json.dumps(value, default=lambda d: float(d), ensure_ascii=False)


def write_json(path: Path) -> Path:
    path.write_text(_dumps(json_objects()), encoding="utf-8")
    return path


def ndjson_bytes() -> bytes:
    return "".join(_dumps(o) + "\n" for o in json_objects()).encode("utf-8")


def write_ndjson(path: Path) -> Path:
    path.write_bytes(ndjson_bytes())
    return path


def write_parquet(path: Path) -> Path:
    table = pa.table(
        {
            "code": pa.array(["007", "010", "100"]),
            "amount": pa.array([0.1, 2.5, 42.0]),
            "day": pa.array(
                [datetime.date(2024, 1, 31), datetime.date(2023, 12, 1), datetime.date(2020, 2, 29)]
            ),
            "note": pa.array(["first", None, "ünïcode, with comma"]),
        }
    )
    pq.write_table(table, path, row_group_size=2)
    return path


def csv_bytes() -> bytes:
    out = io.StringIO()
    import csv

    csv.writer(out, lineterminator="\n").writerows(EXPECTED)
    return out.getvalue().encode("utf-8")


def write_csv_gz(path: Path) -> Path:
    path.write_bytes(gzip.compress(csv_bytes()))
    return path


def write_csv_bz2(path: Path) -> Path:
    path.write_bytes(bz2.compress(csv_bytes()))
    return path


def write_zip(path: Path, members: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in (members or {"codes.csv": csv_bytes()}).items():
            archive.writestr(name, data)
    return path


def write_ndjson_gz(path: Path) -> Path:
    path.write_bytes(gzip.compress(ndjson_bytes()))
    return path


#: (file name, writer, format, compression). Parquet's amount column is a double: 42.0 shows as 42.
FORMATS = [
    ("codes.xlsx", write_xlsx, "xlsx", None),
    ("codes.xlsm", write_xlsm, "xlsm", None),
    ("codes.xls", write_xls, "xls", None),
    ("codes.json", write_json, "json", None),
    ("codes.ndjson", write_ndjson, "ndjson", None),
    ("codes.jsonl", write_ndjson, "ndjson", None),
    ("codes.parquet", write_parquet, "parquet", None),
    ("codes.csv.gz", write_csv_gz, "csv", "gzip"),
    ("codes.csv.bz2", write_csv_bz2, "csv", "bzip2"),
    ("codes.zip", write_zip, "csv", "zip"),
    ("codes.ndjson.gz", write_ndjson_gz, "ndjson", "gzip"),
]


class TestEveryFormat:
    @pytest.mark.parametrize(("name", "writer", "fmt", "compression"), FORMATS, ids=[f[0] for f in FORMATS])
    def test_loads_and_exports_the_cells_as_shown(self, env, tmp_path, name, writer, fmt, compression):
        """Each format loads into table codes and exports the exact cell text the file holds."""
        settings, db = env
        path = writer(tmp_path / name)
        result = load_file(db, settings, LoadRequest(path=path))
        assert result.table == "codes"
        assert result.rows_loaded == 3
        assert export_rows(db, "codes") == EXPECTED
        row = tracking_row(db, result.tracking_id)
        detection = json.loads(row["detection"])
        assert (detection["format"], detection["compression"]) == (fmt, compression)
        assert row["status"] == "loaded"
        assert row["file_hash"] is not None and len(row["file_hash"]) == 64

    @pytest.mark.parametrize(
        ("name", "writer"),
        [("codes.xlsx", write_xlsx), ("codes.parquet", write_parquet), ("codes.csv.gz", write_csv_gz)],
    )
    def test_a_second_fullload_keeps_the_first_as_a_version(self, env, tmp_path, name, writer):
        """Two fullloads of the same file leave two versions, the second current."""
        settings, db = env
        path = writer(tmp_path / name)
        load_file(db, settings, LoadRequest(path=path))
        load_file(db, settings, LoadRequest(path=path))
        assert kept_versions(db, "codes") == [1]
        assert version_count(db, "codes", 1) == 3
        assert export_rows(db, "codes") == EXPECTED
        assert export_rows(db, "codes", version=1) == EXPECTED

    def test_append_of_json_adds_the_rows(self, env, tmp_path):
        """An append of a JSON file after a fullload of the same rows doubles them."""
        settings, db = env
        path = write_json(tmp_path / "codes.json")
        load_file(db, settings, LoadRequest(path=path))
        load_file(db, settings, LoadRequest(path=path, load_type=LoadType.APPEND))
        assert export_rows(db, "codes") == EXPECTED + EXPECTED[1:]

    @pytest.mark.parametrize(
        ("name", "writer"),
        [("codes.xlsx", write_xlsx), ("codes.ndjson", write_ndjson), ("codes.csv.gz", write_csv_gz)],
    )
    def test_type_policy_infer_types_the_columns_and_exports_the_same_text(self, env, tmp_path, name, writer):
        """Under TYPE_POLICY=infer the values are typed and still export as the file's text."""
        settings, db = env
        path = writer(tmp_path / name)
        load_file(db, settings, LoadRequest(path=path, type_policy=TypePolicy.INFER))
        assert export_rows(db, "codes") == EXPECTED


class TestContentDecides:
    def test_a_csv_that_is_really_an_xlsx_loads_as_excel(self, env, tmp_path):
        """An .xlsx renamed .csv loads as a workbook; the tracking row says so."""
        settings, db = env
        path = tmp_path / "codes.csv"
        path.write_bytes(write_xlsx(tmp_path / "real.xlsx").read_bytes())
        result = load_file(db, settings, LoadRequest(path=path))
        assert export_rows(db, "codes") == EXPECTED
        detection = json.loads(tracking_row(db, result.tracking_id)["detection"])
        assert detection["format"] == "xlsx"
        assert "codes.csv" in detection["format_mismatch"]
        assert any("read as xlsx" in w for w in detection["warnings"])

    @pytest.mark.parametrize("name", ["codes.xlsx", "codes.dat"])
    def test_a_macro_enabled_workbook_is_known_by_its_content_type(self, env, tmp_path, name):
        """An .xlsm under another name is read as xlsm: [Content_Types].xml decides, not the name."""
        settings, db = env
        path = tmp_path / name
        path.write_bytes(write_xlsm(tmp_path / "real.xlsm").read_bytes())
        result = load_file(db, settings, LoadRequest(path=path))
        assert result.detection.format == "xlsm"
        assert export_rows(db, "codes") == EXPECTED

    def test_title_rows_above_the_sheet_header_are_skipped(self, env, tmp_path):
        """A title row and a blank row above the header are left out, as in a CSV."""
        settings, db = env
        load_file(db, settings, LoadRequest(path=write_xlsx(tmp_path / "codes.xlsx", title_row=True)))
        assert export_rows(db, "codes") == EXPECTED

    def test_sheet_policy_chooses_the_sheet_by_name(self, env, tmp_path):
        """`sheet:` in the table's policy picks a sheet other than the first."""
        settings, db = env
        (settings.config_dir / "tables").mkdir(parents=True)
        (settings.config_dir / "tables" / "codes.yaml").write_text("sheet: Second\n", encoding="utf-8")
        path = write_xlsx(tmp_path / "codes.xlsx", sheets=("First", "Second"))
        result = load_file(db, settings, LoadRequest(path=path))
        detection = json.loads(tracking_row(db, result.tracking_id)["detection"])
        assert (detection["sheet"], detection["sheets"]) == ("Second", ["First", "Second"])

    def test_a_missing_sheet_is_refused_naming_the_sheets(self, env, tmp_path):
        """A `sheet:` that the workbook lacks refuses the file and lists the sheets it has."""
        settings, db = env
        (settings.config_dir / "tables").mkdir(parents=True)
        (settings.config_dir / "tables" / "codes.yaml").write_text("sheet: 5\n", encoding="utf-8")
        with pytest.raises(SheetNotFoundError, match="'Data'"):
            load_file(db, settings, LoadRequest(path=write_xlsx(tmp_path / "codes.xlsx")))

    def test_unknown_binary_is_refused_with_its_reason(self, env, tmp_path):
        """A PDF named .csv.gz... a PNG named .json is refused, saying what it is."""
        settings, db = env
        path = tmp_path / "codes.json"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
        with pytest.raises(UnsupportedFormatError, match="PNG"):
            load_file(db, settings, LoadRequest(path=path))


class TestHostile:
    def test_a_decompression_bomb_is_refused_and_nothing_loaded(self, env, tmp_path):
        """A gzip that inflates far past the ratio limit is refused as a bomb; no table appears."""
        settings, db = env
        path = tmp_path / "codes.csv.gz"
        path.write_bytes(gzip.compress(b"a,b\n" + b"0" * (64 * 1024 * 1024), compresslevel=9))
        with pytest.raises(DecompressionBombError, match="decompression bomb"):
            load_file(db, settings, LoadRequest(path=path))
        with db.read() as conn:
            assert db.reflect(conn, "codes", db.catalog.data_schema) is None

    def test_the_total_bytes_limit_is_a_setting(self, tmp_path, sqlite_url):
        """MAX_DECOMPRESSED_BYTES stops a file that produces more than it allows."""
        settings = make_settings(tmp_path, sqlite_url, max_decompressed_bytes=1024 * 1024)
        db = open_db(settings)
        try:
            path = tmp_path / "codes.csv.gz"
            path.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 300_000))
            with pytest.raises(DecompressionBombError, match="MAX_DECOMPRESSED_BYTES"):
                load_file(db, settings, LoadRequest(path=path))
        finally:
            db.dispose()

    def test_a_truncated_gzip_is_refused(self, env, tmp_path):
        """A .gz cut short is refused as incomplete."""
        settings, db = env
        path = tmp_path / "codes.csv.gz"
        data = gzip.compress(csv_bytes() * 50)
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises((TruncatedFileError, FileRejectedError)):
            load_file(db, settings, LoadRequest(path=path))

    def test_a_zip_with_two_members_is_refused(self, env, tmp_path):
        """A zip of two data files is refused: one drop is one table."""
        settings, db = env
        path = write_zip(tmp_path / "codes.zip", {"a.csv": csv_bytes(), "b.csv": csv_bytes()})
        with pytest.raises(ArchiveLayoutError, match="exactly one"):
            load_file(db, settings, LoadRequest(path=path))


class TestBeyondTheSample:
    def test_a_compressed_csv_larger_than_the_sample_loads_every_row(self, tmp_path, sqlite_url):
        """A .csv.gz far larger than SAMPLE_BYTES is detected from its head and tail and fully loaded."""
        settings = make_settings(tmp_path, sqlite_url, sample_bytes=4096)
        db = open_db(settings)
        try:
            rows = [["code", "amount"], *([f"{i:06d}", f"{i}.5"] for i in range(20_000))]
            text = "".join(",".join(r) + "\n" for r in rows)
            path = tmp_path / "codes.csv.xz"
            import lzma

            path.write_bytes(lzma.compress(text.encode("utf-8")))
            result = load_file(db, settings, LoadRequest(path=path))
            assert result.rows_loaded == 20_000
            assert result.detection.estimated_rows is not None
            assert 15_000 < result.detection.estimated_rows < 25_000
            assert export_rows(db, "codes") == rows
        finally:
            db.dispose()

    def test_nested_json_objects_become_dotted_columns(self, env, tmp_path):
        """A nested object is flattened to address.city; an array stays JSON text."""
        settings, db = env
        path = tmp_path / "people.json"
        path.write_text(
            json.dumps([{"id": "01", "address": {"city": "Oslo"}, "tags": ["a", "b"]}, {"id": "02"}]),
            encoding="utf-8",
        )
        load_file(db, settings, LoadRequest(path=path))
        exported = export_rows(db, "people")
        assert exported[0] == ["id", "address.city", "tags"]
        assert exported[1][:2] == ["01", "Oslo"] and json.loads(exported[1][2]) == ["a", "b"]
        assert exported[2] == ["02", "", ""]

    def test_a_zip_bomb_is_refused_before_it_is_read(self, env, tmp_path):
        """A zip member that inflates far beyond the ratio limit is refused as a bomb."""
        settings, db = env
        path = tmp_path / "codes.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            archive.writestr("codes.csv", b"a,b\n" + b"0" * (64 * 1024 * 1024))
        with pytest.raises(DecompressionBombError, match="decompression limits"):
            load_file(db, settings, LoadRequest(path=path))

    def test_a_workbook_inside_gzip_is_refused_with_the_reason(self, env, tmp_path):
        """An .xlsx.gz is refused: a workbook needs random access and is compressed already."""
        settings, db = env
        path = tmp_path / "codes.xlsx.gz"
        path.write_bytes(gzip.compress(write_xlsx(tmp_path / "real.xlsx").read_bytes()))
        with pytest.raises(UnsupportedFormatError, match="random access"):
            load_file(db, settings, LoadRequest(path=path))


class TestMisfits:
    def test_a_value_that_does_not_fit_a_typed_column_is_refused_naming_it(self, env, tmp_path):
        """An NDJSON append with text in an inferred date column is refused, naming the value."""
        settings, db = env
        load_file(
            db,
            settings,
            LoadRequest(path=write_ndjson(tmp_path / "codes.ndjson"), type_policy=TypePolicy.INFER),
        )
        bad = tmp_path / "codes_more.ndjson"
        bad.write_text(json.dumps({"code": "011", "amount": "1", "day": "soon", "note": "x"}) + "\n")
        with pytest.raises(FileRejectedError, match="row 1, column 'day': 'soon'"):
            load_file(db, settings, LoadRequest(path=bad, table="codes", load_type=LoadType.APPEND))
        assert export_rows(db, "codes") == EXPECTED
