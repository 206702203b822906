"""A fullload with make_current=False is kept as a version; the live table is untouched.

Versions are numbered per table in load order, kept or current alike: the newer file loaded first
is version 1, the older one kept beside it version 2.
"""

from __future__ import annotations

from pathlib import Path

from backend.load.loader import load_file
from backend.models import LoadRequest
from tests.support import export_rows, kept_versions, rows, write_csv


class TestKeepAsVersion:
    def test_an_older_file_becomes_a_version_and_the_table_keeps_the_newer(self, env, tmp_path: Path):
        """make_current=False stores the rows as the next bkp version; ref, cfg and claims stay."""
        settings, db = env
        newer = write_csv(tmp_path / "rates_2024-01-02.csv", [["code", "rate"], ["EUR", "2"]])
        first = load_file(db, settings, LoadRequest(path=newer))
        older = write_csv(tmp_path / "rates_2024-01-01.csv", [["code", "rate"], ["EUR", "1"], ["USD", "9"]])
        kept = load_file(db, settings, LoadRequest(path=older, make_current=False))
        assert export_rows(db, "rates") == [["code", "rate"], ["EUR", "2"]]
        assert kept.backup_version == 2 and kept.rows_loaded == 2
        assert export_rows(db, "rates", version=2) == [["code", "rate"], ["EUR", "1"], ["USD", "9"]]
        assert kept_versions(db, "rates") == [2]
        from backend.tracking import versions as catalogue

        with db.read() as conn:
            row = catalogue.version_of(conn, db, "rates", 2)
        assert row is not None and row.state == catalogue.KEPT and not row.attached
        assert (row.object_schema, row.object_name) == db.adapter.kept_place(db.catalog, "rates", 2)
        events = [
            r[0]
            for r in rows(
                db, 'SELECT event FROM ref."File_Monitor_Events" WHERE tracking_id = :i', i=kept.tracking_id
            )
        ]
        assert "kept_as_version" in events and "published" not in events
        cfg = rows(db, 'SELECT last_tracking_id FROM ref."Reference_Data_Cfg"')
        assert cfg == [(first.tracking_id,)]

    def test_the_next_current_fullload_keeps_the_live_rows_beside_the_kept_version(self, env, tmp_path: Path):
        """Versions keep counting: a later fullload (version 3) keeps the live rows, version 1."""
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
        assert third.backup_version == 1
        assert export_rows(db, "r") == [["a"], ["3"]] and export_rows(db, "r", version=1) == [["a"], ["2"]]
        assert export_rows(db, "r", version=2) == [["a"], ["1"]]
        assert kept_versions(db, "r") == [1, 2]

    def test_a_version_with_columns_the_table_lacks_is_kept_as_it_was_written(self, env, tmp_path: Path):
        """A version-only file with a column the table does not have is kept with that column (a
        version is a table of its own); the live table does not gain the column."""
        settings, db = env
        load_file(db, settings, LoadRequest(path=write_csv(tmp_path / "s_2024-01-02.csv", [["a"], ["2"]])))
        policy = settings.config_dir / "tables"
        policy.mkdir(parents=True)
        (policy / "s.yaml").write_text("schema_evolution: add_columns\n")
        kept = load_file(
            db,
            settings,
            LoadRequest(
                path=write_csv(tmp_path / "s_2024-01-01.csv", [["a", "b"], ["1", "x"]]),
                make_current=False,
            ),
        )
        assert export_rows(db, "s") == [["a"], ["2"]]
        assert export_rows(db, "s", version=kept.backup_version) == [["a", "b"], ["1", "x"]]
