"""Reading a dropped file at an offset, with os.pread and with the fallback for Windows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend import files
from backend.files import open_regular_file, read_at
from backend.load.loader import load_file
from backend.load.readers.view import open_view
from backend.models import LoadRequest
from tests.load.test_formats import EXPECTED, write_parquet, write_xlsx
from tests.support import export_rows, make_settings, open_db

DATA = bytes(range(256)) * 64


@pytest.fixture(params=["pread", "seek_read"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs once with os.pread and once with the fallback Windows gets."""
    if request.param == "seek_read":
        monkeypatch.setattr(files, "_read_at", files._seek_read)
    elif not hasattr(os, "pread"):
        pytest.skip("os.pread is not available here")
    return str(request.param)


class TestReadAt:
    def test_reads_the_bytes_at_the_offset(self, tmp_path: Path, reader: str) -> None:
        """The bytes from the offset come back, fewer only at the end of the file."""
        path = tmp_path / "data.bin"
        path.write_bytes(DATA)
        with open_regular_file(path, buffering=0) as raw:
            assert read_at(raw.fileno(), 10, 300) == DATA[300:310]
            assert read_at(raw.fileno(), 100, len(DATA) - 4) == DATA[-4:]
            assert read_at(raw.fileno(), 10, len(DATA) + 5) == b""

    def test_the_descriptor_position_stays_where_it_was(self, tmp_path: Path, reader: str) -> None:
        """A read at an offset between two sequential reads does not move the sequential stream."""
        path = tmp_path / "data.bin"
        path.write_bytes(DATA)
        with open_regular_file(path, buffering=0) as raw:
            first = raw.read(100)
            assert read_at(raw.fileno(), 50, 5000) == DATA[5000:5050]
            assert first + raw.read(100) == DATA[:200]

    def test_the_fallback_is_chosen_only_without_pread(self) -> None:
        """The selector picks os.pread where the system has it."""
        expected = getattr(os, "pread", files._seek_read)
        assert files._read_at is expected


class TestViewsWithEitherReader:
    def test_a_view_and_the_hashing_stream_read_independently(self, tmp_path: Path, reader: str) -> None:
        """A view reads from its own offset while the loader's buffered stream keeps its own."""
        path = tmp_path / "data.bin"
        path.write_bytes(DATA)
        with open_regular_file(path) as raw:
            head = raw.read(1000)
            with open_view(raw) as view:
                view.seek(8000)
                assert view.read(16) == DATA[8000:8016]
                assert view.read(4) == DATA[8016:8020]
            assert head + raw.read() == DATA

    @pytest.mark.parametrize(
        ("name", "writer"), [("codes.xlsx", write_xlsx), ("codes.parquet", write_parquet)]
    )
    def test_a_workbook_and_a_parquet_file_load_the_same(
        self, tmp_path: Path, sqlite_url: str, reader: str, name, writer
    ) -> None:
        """Formats read through views load the same cells with the fallback as with os.pread."""
        settings = make_settings(tmp_path, sqlite_url)
        db = open_db(settings)
        try:
            result = load_file(db, settings, LoadRequest(path=writer(tmp_path / name)))
            assert result.rows_loaded == 3
            assert export_rows(db, "codes") == EXPECTED
        finally:
            db.dispose()

    def test_a_csv_is_detected_and_loaded_the_same(
        self, tmp_path: Path, sqlite_url: str, reader: str
    ) -> None:
        """The CSV detection's head and tail reads give the same result with the fallback."""
        settings = make_settings(tmp_path, sqlite_url, sample_bytes=4096)
        db = open_db(settings)
        try:
            rows = [["code", "amount"], *([f"{i:05d}", f"{i}.5"] for i in range(3000))]
            path = tmp_path / "codes.csv"
            path.write_text("".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
            result = load_file(db, settings, LoadRequest(path=path))
            assert result.rows_loaded == 3000
            assert export_rows(db, "codes") == rows
        finally:
            db.dispose()
