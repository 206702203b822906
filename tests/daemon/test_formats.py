"""The real daemon loads workbooks (xlsx, xlsm) and a compressed CSV dropped side by side (issue 17)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.daemon.support import Daemon, data_files, query, wait_for
from tests.load.test_formats import EXPECTED, write_csv_gz, write_xlsm, write_xlsx

pytestmark = pytest.mark.daemon


def place(writer, folder: Path, name: str) -> Path:
    """Write with the format's own tool under a hidden name, then rename into the drop folder."""
    hidden = writer(folder / f".{name}.part")
    target = folder / name
    os.replace(hidden, target)
    return target


class TestFormatsThroughTheDaemon:
    def test_an_xlsx_and_a_csv_gz_are_loaded_and_moved_to_processed(self, daemon: Daemon):
        """All three end in processed/, their tables hold the cells as written, tracking names each format."""
        daemon.start().wait_healthy()
        folder = daemon.folder("ref", "fullload")
        place(write_xlsx, folder, "codes.xlsx")
        place(write_csv_gz, folder, "rates.csv.gz")
        place(write_xlsm, folder, "macros.xlsm")
        wait_for(lambda: len(data_files(folder, "processed")) == 3, 60, what="all files in processed/")
        names = sorted(p.name.split("_", 2)[-1] for p in data_files(folder, "processed"))
        assert names == ["codes.xlsx", "macros.xlsm", "rates.csv.gz"]
        assert not data_files(folder, "error")
        for table in ("codes", "rates", "macros"):
            rows = query(
                daemon.url,
                daemon.root,
                f"SELECT code, amount, day, note FROM ref.{table} ORDER BY _row_number",
            )
            assert [[v or "" for v in r] for r in rows] == EXPECTED[1:]
        track = query(
            daemon.url,
            daemon.root,
            'SELECT status, rows_loaded, detection FROM ref."File_Monitor_Tracking" ORDER BY id',
        )
        assert [tuple(t[:2]) for t in track] == [("loaded", 3)] * 3
        formats = sorted(json.loads(t[2])["format"] for t in track)
        assert formats == ["csv", "xlsm", "xlsx"]
