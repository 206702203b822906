"""A fullload with make_current=False is kept as a bkp version; the live table is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import RowError
from backend.load.loader import load_file
from backend.models import LoadRequest
from tests.support import export_rows, make_settings, open_db, rows, write_csv


@pytest.fixture
def env(tmp_path: Path, db_url: str):
    settings = make_settings(tmp_path, db_url)
    db = open_db(settings)
    yield settings, db
    db.dispose()


class TestKeepAsVersion:
    def test_an_older_file_becomes_a_version_and_the_table_keeps_the_newer(self, env, tmp_path: Path):
        """make_current=False stores the rows as the next bkp version; ref, cfg and claims stay."""
        settings, db = env
        newer = write_csv(tmp_path / "rates_2024-01-02.csv", [["code", "rate"], ["EUR", "2"]])
        first = load_file(db, settings, LoadRequest(path=newer))
        older = write_csv(tmp_path / "rates_2024-01-01.csv", [["code", "rate"], ["EUR", "1"], ["USD", "9"]])
        kept = load_file(db, settings, LoadRequest(path=older, make_current=False))
        assert export_rows(db, "rates") == [["code", "rate"], ["EUR", "2"]]
        assert kept.backup_version == 1 and kept.rows_loaded == 2
        assert export_rows(db, "rates", version=1) == [["code", "rate"], ["EUR", "1"], ["USD", "9"]]
        events = [
            r[0]
            for r in rows(
                db, 'SELECT event FROM ref."File_Monitor_Events" WHERE tracking_id = :i', i=kept.tracking_id
            )
        ]
        assert "kept_as_version" in events and "published" not in events
        cfg = rows(db, 'SELECT last_tracking_id FROM ref."Reference_Data_Cfg"')
        assert cfg == [(first.tracking_id,)]

    def test_the_next_current_fullload_numbers_its_backup_after_the_kept_version(self, env, tmp_path: Path):
        """Versions keep counting: a later fullload archives the live rows as version 2."""
        settings, db = env
        load_file(db, settings, LoadRequest(path=write_csv(tmp_path / "r_2024-01-02.csv", [["a"], ["2"]])))
        load_file(
            db,
            settings,
            LoadRequest(path=write_csv(tmp_path / "r_2024-01-01.csv", [["a"], ["1"]]), make_current=False),
        )
        third = load_file(
            db, settings, LoadRequest(path=write_csv(tmp_path / "r_2024-01-03.csv", [["a"], ["3"]]))
        )
        assert third.backup_version == 2
        assert export_rows(db, "r") == [["a"], ["3"]] and export_rows(db, "r", version=2) == [["a"], ["2"]]

    def test_columns_the_table_lacks_are_refused_for_a_version(self, env, tmp_path: Path):
        """A version-only file with columns the table does not have is refused, the table unchanged."""
        settings, db = env
        load_file(db, settings, LoadRequest(path=write_csv(tmp_path / "s_2024-01-02.csv", [["a"], ["2"]])))
        policy = settings.config_dir / "tables"
        policy.mkdir(parents=True)
        (policy / "s.yaml").write_text("schema_evolution: add_columns\n")
        with pytest.raises(RowError, match="kept as a version only"):
            load_file(
                db,
                settings,
                LoadRequest(
                    path=write_csv(tmp_path / "s_2024-01-01.csv", [["a", "b"], ["1", "x"]]),
                    make_current=False,
                ),
            )
        assert export_rows(db, "s") == [["a"], ["2"]]
