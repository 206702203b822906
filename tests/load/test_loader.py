"""End-to-end loads through the real pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa

from backend import faults
from backend.errors import EmptyFileError, FileRejectedError, RowError, SchemaMismatchError
from backend.load.loader import load_file
from backend.models import LoadRequest, LoadType
from tests.support import (
    export_rows,
    kept_versions,
    make_settings,
    open_db,
    read_csv,
    version_count,
    write_csv,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def tracking_rows(db) -> list[dict]:
    t = db.catalog.tracking
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]


def count(db, schema: str, table: str, where: str = "") -> int:
    with db.read() as conn:
        tbl = sa.Table(table, sa.MetaData(), schema=schema, autoload_with=conn)
        q = sa.select(sa.func.count()).select_from(tbl)
        if where:
            q = q.where(sa.text(where))
        return int(conn.execute(q).scalar_one())


class TestRoundTrip:
    @pytest.mark.parametrize(
        "name,delimiter,encoding",
        [
            ("countries.csv", ",", "utf-8"),
            ("currencies.csv", ",", "utf-8-sig"),
            ("airports.tsv", "\t", "utf-8"),
            ("cost_centres_20240131.csv", ";", "cp1252"),
        ],
    )
    def test_example_file_exports_exactly_its_cells(self, env, name, delimiter, encoding):
        """Loading an example file and exporting the table gives back the file's cells exactly."""
        settings, db = env
        path = EXAMPLES / name
        result = load_file(db, settings, LoadRequest(path=path))
        expected = read_csv(path, delimiter=delimiter, encoding=encoding)
        assert result.rows_loaded == len(expected) - 1
        assert export_rows(db, result.table) == expected

    def test_na_null_and_none_stay_text_and_only_empty_cells_become_null(self, env, tmp_path):
        """NA, null, None, nan and N/A are kept as written; an empty cell is stored as NULL."""
        settings, db = env
        path = write_csv(
            tmp_path / "codes.csv",
            [["code", "name"], ["NA", "Namibia"], ["null", "None"], ["nan", "N/A"], ["XX", ""]],
        )
        load_file(db, settings, LoadRequest(path=path))
        with db.read() as conn:
            got = conn.execute(sa.text("SELECT code, name FROM ref.codes ORDER BY _row_number")).all()
        assert [tuple(r) for r in got] == [("NA", "Namibia"), ("null", "None"), ("nan", "N/A"), ("XX", None)]

    def test_quoted_fields_with_delimiters_and_newlines_survive(self, env, tmp_path):
        """A quoted cell holding the delimiter, quotes and a line break is stored unchanged."""
        settings, db = env
        rows = [["id", "text"], ["1", 'a, "quoted"\nsecond line'], ["2", "plain"]]
        path = write_csv(tmp_path / "notes.csv", rows)
        load_file(db, settings, LoadRequest(path=path))
        assert export_rows(db, "notes") == rows

    @pytest.mark.parametrize("batch", [2, 1000])
    def test_values_copy_would_escape_survive_in_every_batch_layout(self, tmp_path, db_url, batch):
        """Tabs, backslashes, \\N, CR and LF in values, next to plain batches, are stored unchanged."""
        settings = make_settings(tmp_path, db_url, ingest_batch_size=batch)
        db = open_db(settings)
        rows = [
            ["id", "text"],
            ["1", "plain"],
            ["2", "é€ ünïcode"],
            ["3", "tab\there"],
            ["4", "back\\slash"],
            ["5", "\\N"],
            ["6", "cr\rlf\r\nlf\nend"],
            ["7", "\\."],
            ["8", "last"],
        ]
        try:
            load_file(db, settings, LoadRequest(path=write_csv(tmp_path / "escapes.csv", rows)))
            assert export_rows(db, "escapes") == rows
        finally:
            db.dispose()


class TestVersions:
    def test_fullload_twice_keeps_one_copy_and_one_backup_version(self, env, tmp_path):
        """A second fullload replaces the rows and keeps the first contents as bkp version 1."""
        settings, db = env
        first = write_csv(tmp_path / "rates.csv", [["code", "rate"], ["EUR", "1.0"], ["USD", "1.1"]])
        load_file(db, settings, LoadRequest(path=first))
        second = write_csv(
            tmp_path / "rates.csv", [["code", "rate"], ["EUR", "1.0"], ["USD", "1.2"], ["GBP", "0.9"]]
        )
        result = load_file(db, settings, LoadRequest(path=second))
        assert result.backup_version == 1
        assert count(db, "ref", "rates") == 3
        assert version_count(db, "rates", 1) == 2
        assert export_rows(db, "rates", version=1) == [["code", "rate"], ["EUR", "1.0"], ["USD", "1.1"]]

    def test_every_version_is_a_table_of_its_own(self, env, tmp_path):
        """Three fullloads: version 3 is current, versions 1 and 2 are kept, each in its own table."""
        settings, db = env
        for rate in ("1.0", "1.1", "1.2"):
            load_file(db, settings, LoadRequest(path=write_csv(tmp_path / "rates.csv", [["rate"], [rate]])))
        assert kept_versions(db, "rates") == [1, 2]
        assert [version_count(db, "rates", v) for v in (1, 2, 3)] == [1, 1, 1]
        assert export_rows(db, "rates", version=2) == [["rate"], ["1.1"]]
        assert export_rows(db, "rates") == [["rate"], ["1.2"]]

    def test_append_twice_doubles_the_rows_and_keeps_no_backup(self, env, tmp_path):
        """Appending the same file twice doubles the rows; append does not write bkp versions."""
        settings, db = env
        path = write_csv(tmp_path / "events.csv", [["id"], ["1"], ["2"]])
        for _ in range(2):
            result = load_file(db, settings, LoadRequest(path=path, load_type=LoadType.APPEND))
            assert result.backup_version is None
        assert export_rows(db, "events") == [["id"], ["1"], ["2"], ["1"], ["2"]]

    def test_restore_version_one_brings_back_the_first_contents(self, env, tmp_path, capsys):
        """restore --version 1 makes the first contents current and keeps the replaced rows as a version."""
        settings, db = env
        path = tmp_path / "units.csv"
        write_csv(path, [["unit"], ["kg"], ["g"]])
        load_file(db, settings, LoadRequest(path=path))
        write_csv(path, [["unit"], ["m"]])
        load_file(db, settings, LoadRequest(path=path))
        from backend.ops.restore import restore_version

        _tracking_id, restored, replaced = restore_version(db, "units", 1)
        assert restored == 2
        assert replaced == 2
        assert export_rows(db, "units") == [["unit"], ["kg"], ["g"]]
        assert export_rows(db, "units", version=2) == [["unit"], ["m"]]
        assert tracking_rows(db)[-1]["status"] == "loaded"


class TestAtomicity:
    def test_failure_in_the_last_batch_leaves_ref_and_bkp_untouched(self, env, tmp_path, monkeypatch):
        """A fault injected in the last staged batch rolls back: ref and bkp keep their rows, tracking says
        error.
        """
        settings, db = env
        path = tmp_path / "items.csv"
        write_csv(path, [["id"], *[[str(i)] for i in range(10)]])
        load_file(db, settings, LoadRequest(path=path))
        write_csv(path, [["id"], *[[str(i)] for i in range(100, 125)]])
        small_batches = make_settings(tmp_path, settings.url, ingest_batch_size=10)
        monkeypatch.setenv("REFDATA_FAULTS", "stage.batch@3")
        faults.reset()
        with pytest.raises(FileRejectedError, match="injected fault"):
            load_file(db, small_batches, LoadRequest(path=path))
        monkeypatch.delenv("REFDATA_FAULTS")
        assert export_rows(db, "items") == [["id"], *[[str(i)] for i in range(10)]]
        assert kept_versions(db, "items") == []
        last = tracking_rows(db)[-1]
        assert last["status"] == "error"
        assert "injected fault" in last["error_message"]

    def test_failure_just_before_commit_rolls_back_backup_and_replace(self, env, tmp_path, monkeypatch):
        """A fault after the bkp copy and the new rows, just before commit, leaves both tables as before."""
        settings, db = env
        path = tmp_path / "items.csv"
        write_csv(path, [["id"], ["a"], ["b"]])
        load_file(db, settings, LoadRequest(path=path))
        write_csv(path, [["id"], ["c"]])
        monkeypatch.setenv("REFDATA_FAULTS", "publish.before_commit")
        faults.reset()
        with pytest.raises(FileRejectedError):
            load_file(db, settings, LoadRequest(path=path))
        monkeypatch.delenv("REFDATA_FAULTS")
        assert export_rows(db, "items") == [["id"], ["a"], ["b"]]
        assert kept_versions(db, "items") == []
        assert tracking_rows(db)[-1]["status"] == "error"

    def test_ragged_last_row_fails_with_its_line_number_and_publishes_nothing(self, env, tmp_path):
        """A row with too many fields at the end fails the load naming its line; the table stays absent."""
        settings, db = env
        path = tmp_path / "ragged.csv"
        path.write_text("a,b\n1,2\n3,4\n5,6,7\n", encoding="utf-8")
        with pytest.raises(RowError, match="line 4 has 3 fields"):
            load_file(db, settings, LoadRequest(path=path))
        assert not sa.inspect(db.engine).has_table("ragged", schema="ref")
        last = tracking_rows(db)[-1]
        assert last["status"] == "error" and "line 4" in last["error_message"]


class TestBadInput:
    def test_empty_file_is_refused_with_a_clear_reason(self, env, tmp_path):
        """A 0-byte file fails with 'empty' and a tracking row in error."""
        settings, db = env
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
        with pytest.raises(EmptyFileError, match="empty"):
            load_file(db, settings, LoadRequest(path=path))
        assert tracking_rows(db)[-1]["status"] == "error"

    def test_header_only_fullload_is_refused_unless_allowed(self, env, tmp_path):
        """A header-only file cannot wipe a table by fullload, but loads zero rows when allowed."""
        settings, db = env
        path = tmp_path / "colours.csv"
        write_csv(path, [["colour"], ["red"]])
        load_file(db, settings, LoadRequest(path=path))
        write_csv(path, [["colour"]])
        with pytest.raises(EmptyFileError, match="no data rows"):
            load_file(db, settings, LoadRequest(path=path))
        assert export_rows(db, "colours") == [["colour"], ["red"]]
        result = load_file(db, settings, LoadRequest(path=path, allow_empty_fullload=True))
        assert result.rows_loaded == 0
        assert export_rows(db, "colours") == [["colour"]]

    def test_binary_file_is_refused_and_nothing_is_created(self, env, tmp_path):
        """A PNG renamed .csv fails cleanly with a reason, and no table appears."""
        settings, db = env
        path = tmp_path / "logo.csv"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
        with pytest.raises(FileRejectedError) as info:
            load_file(db, settings, LoadRequest(path=path))
        assert str(info.value)
        assert not sa.inspect(db.engine).has_table("logo", schema="ref")
        assert tracking_rows(db)[-1]["status"] == "error"

    def test_later_file_with_other_columns_reports_match_missing_and_extra(self, env, tmp_path):
        """A file whose columns differ from the table fails with the match percentage and the differences."""
        settings, db = env
        path = tmp_path / "people.csv"
        write_csv(path, [["id", "name", "email"], ["1", "Ann", "a@x"]])
        load_file(db, settings, LoadRequest(path=path))
        write_csv(path, [["id", "name", "phone"], ["2", "Bob", "123"]])
        with pytest.raises(SchemaMismatchError) as info:
            load_file(db, settings, LoadRequest(path=path))
        message = str(info.value)
        assert "50.0% match" in message and "email" in message and "phone" in message


class TestInjection:
    HEADERS: ClassVar[list[str]] = [
        "a]; DROP TABLE x;--",
        '"; DELETE FROM t; --',
        "Robert'); DROP TABLE students;--",
    ]

    def test_sql_looking_headers_and_table_names_load_as_ordinary_columns(self, env, tmp_path):
        """Hostile header cells and file names become plain quoted identifiers; the values load as data."""
        settings, db = env
        rows = [self.HEADERS, ["1", "2", "3"]]
        path = write_csv(tmp_path / "x'; DROP TABLE ref.File_Monitor_Tracking;--.csv", rows)
        result = load_file(db, settings, LoadRequest(path=path))
        assert export_rows(db, result.table) == rows
        assert len(tracking_rows(db)) == 1


class TestTracking:
    def test_tracking_row_records_detection_hash_counts_and_reference_cfg_once(self, env, tmp_path):
        """Tracking keeps encoding, delimiter, headers, SHA-256 and counts; Reference_Data_Cfg gets one row
        per table.
        """
        settings, db = env
        path = write_csv(tmp_path / "langs.csv", [["Code", "Name"], ["en", "English"], ["fr", "French"]])
        import hashlib

        for _ in range(2):
            load_file(db, settings, LoadRequest(path=path))
        row = tracking_rows(db)[-1]
        assert row["status"] == "loaded"
        assert row["file_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row["detected_delimiter"] == ","
        assert json.loads(row["detected_headers"]) == ["Code", "Name"]
        assert (row["rows_read"], row["rows_loaded"], row["rows_rejected"]) == (2, 2, 0)
        cfg = db.catalog.reference_cfg
        with db.read() as conn:
            cfg_rows = conn.execute(sa.select(cfg.c.table_name)).all()
        assert [r.table_name for r in cfg_rows] == ["langs"]
        events = db.catalog.events
        with db.read() as conn:
            names = [
                r.event
                for r in conn.execute(sa.select(events.c.event).where(events.c.tracking_id == row["id"]))
            ]
        assert names == ["started", "detected", "staged", "validated", "published"]

    def test_non_reference_load_writes_no_reference_cfg(self, env, tmp_path):
        """--no-reference loads write no Reference_Data_Cfg row."""
        settings, db = env
        path = write_csv(tmp_path / "temp.csv", [["k"], ["v"]])
        load_file(db, settings, LoadRequest(path=path, is_reference=False))
        with db.read() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(db.catalog.reference_cfg)).scalar() == 0
            )
