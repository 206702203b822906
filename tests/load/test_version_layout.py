"""Versions as whole tables: what lives around them survives, old layouts migrate, crashes clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.daemon import claim
from backend.load import versions
from backend.load.loader import load_file
from backend.models import LoadRequest
from backend.tracking import versions as catalogue
from tests.support import export_rows, kept_versions, version_count, write_csv

ROOT = Path(__file__).resolve().parents[2]


def load(db, settings, path: Path, rows: list[list[str]]) -> None:
    load_file(db, settings, LoadRequest(path=write_csv(path, rows)))


class TestWhatLivesAroundTheTable:
    def test_a_view_on_the_table_follows_every_publish_and_restore(self, env, tmp_path):
        """A view an operator made on ref.<table> shows the current rows after fullloads and a restore."""
        settings, db = env
        path = tmp_path / "rates.csv"
        load(db, settings, path, [["code", "rate"], ["EUR", "1.0"]])
        with db.write() as conn:
            conn.execute(sa.text("CREATE VIEW ref.rates_codes AS SELECT code FROM ref.rates"))
        load(db, settings, path, [["code", "rate"], ["USD", "1.1"], ["GBP", "0.9"]])
        load(db, settings, path, [["code", "rate"], ["JPY", "150"]])

        def through_view() -> list[str]:
            with db.read() as conn:
                return sorted(r[0] for r in conn.execute(sa.text("SELECT code FROM ref.rates_codes")))

        assert through_view() == ["JPY"]
        from backend.ops.restore import restore_version

        restore_version(db, "rates", 2)
        assert through_view() == ["GBP", "USD"]

    def test_grants_on_the_table_survive_fullloads_and_a_restore(self, env, tmp_path, db_url):
        """PostgreSQL: a reader role granted SELECT on ref.<table> keeps it, and reads the new rows."""
        if not db_url.startswith("postgresql"):
            pytest.skip("grants are a PostgreSQL matter here")
        settings, db = env
        path = tmp_path / "units.csv"
        load(db, settings, path, [["unit"], ["kg"]])
        role = f"reader_{os.getpid()}"
        with db.write() as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
            conn.execute(sa.text(f"CREATE ROLE {role}"))
            conn.execute(sa.text(f"GRANT USAGE ON SCHEMA ref TO {role}"))
            conn.execute(sa.text(f"GRANT SELECT ON ref.units TO {role}"))
        try:
            for unit in ("g", "m", "s"):
                load(db, settings, path, [["unit"], [unit]])
            from backend.ops.restore import restore_version

            restore_version(db, "units", 2)
            with db.write() as conn:
                allowed = conn.execute(
                    sa.text("SELECT has_table_privilege(:r, 'ref.units', 'SELECT')"), {"r": role}
                ).scalar_one()
                conn.execute(sa.text(f"SET LOCAL ROLE {role}"))
                seen = [r[0] for r in conn.execute(sa.text("SELECT unit FROM ref.units"))]
            assert allowed is True
            assert seen == ["g"]
        finally:
            with db.write() as conn:
                conn.execute(sa.text(f"REVOKE ALL ON ref.units FROM {role}"))
                conn.execute(sa.text(f"REVOKE ALL ON SCHEMA ref FROM {role}"))
                conn.execute(sa.text(f"DROP ROLE {role}"))


def make_legacy_rates(db) -> None:
    """ref.rates as a plain table (CHF) and bkp.rates holding versions 1 (EUR) and 2 (USD, GBP) as
    rows: the layout of the releases that copied rows to keep versions."""
    meta = sa.MetaData()

    def columns() -> list[sa.Column[object]]:
        return [
            sa.Column("code", sa.UnicodeText),
            sa.Column("rate", sa.UnicodeText),
            sa.Column("_load_id", sa.BigInteger),
            sa.Column("_row_number", sa.BigInteger),
            sa.Column("_loaded_at", sa.DateTime),
            sa.Column("_load_type", sa.String(16)),
        ]

    live = sa.Table("rates", meta, *columns(), schema="ref")
    bkp = sa.Table(
        "rates",
        meta,
        *columns(),
        sa.Column("_bkp_version", sa.Integer),
        sa.Column("_bkp_load_id", sa.BigInteger),
        sa.Column("_bkp_at", sa.DateTime),
        schema="bkp",
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    with db.write() as conn:
        meta.create_all(conn)
        row = {"_loaded_at": now, "_load_type": "fullload"}
        conn.execute(
            sa.insert(live), [{"code": "CHF", "rate": "0.9", "_load_id": 3, "_row_number": 1, **row}]
        )
        conn.execute(
            sa.insert(bkp),
            [
                {"code": "EUR", "rate": "1.0", "_load_id": 1, "_row_number": 1, "_bkp_version": 1, **row},
                {"code": "USD", "rate": "1.1", "_load_id": 2, "_row_number": 1, "_bkp_version": 2, **row},
                {"code": "GBP", "rate": "0.8", "_load_id": 2, "_row_number": 2, "_bkp_version": 2, **row},
            ],
        )
    db.forget_table("ref", "rates")
    db.forget_table("bkp", "rates")


class TestLegacyLayout:
    def test_a_table_from_the_row_copy_release_keeps_every_version(self, env, tmp_path):
        """ref.<t> as a plain table and bkp.<t> holding versions 1 and 2 as rows (the layout of earlier
        releases): the next fullload migrates them to tables of their own and loses nothing."""
        settings, db = env
        make_legacy_rates(db)

        load(db, settings, tmp_path / "rates.csv", [["code", "rate"], ["JPY", "150"]])

        assert kept_versions(db, "rates") == [1, 2, 3]
        assert export_rows(db, "rates", version=1) == [["code", "rate"], ["EUR", "1.0"]]
        assert export_rows(db, "rates", version=2) == [["code", "rate"], ["USD", "1.1"], ["GBP", "0.8"]]
        assert export_rows(db, "rates", version=3) == [["code", "rate"], ["CHF", "0.9"]]
        assert export_rows(db, "rates") == [["code", "rate"], ["JPY", "150"]]
        assert [version_count(db, "rates", v) for v in (1, 2, 3, 4)] == [1, 2, 1, 1]

    def test_init_db_moves_old_tables_once_and_leaves_new_ones(self, env, tmp_path):
        """`init-db` (adopt_all) migrates the old layout up front; run again, it finds nothing to do."""
        settings, db = env
        load(db, settings, tmp_path / "units.csv", [["unit"], ["kg"]])  # already in the new layout
        load(db, settings, tmp_path / "units.csv", [["unit"], ["g"]])
        make_legacy_rates(db)

        assert versions.adopt_all(db) == ["rates"]
        assert versions.adopt_all(db) == []
        assert kept_versions(db, "rates") == [1, 2]
        assert export_rows(db, "rates") == [["code", "rate"], ["CHF", "0.9"]]
        assert export_rows(db, "rates", version=2) == [["code", "rate"], ["USD", "1.1"], ["GBP", "0.8"]]
        assert kept_versions(db, "units") == [1]
        assert export_rows(db, "units") == [["unit"], ["g"]]


class TestCrashes:
    def test_a_killed_load_leaves_no_table_behind_once_recovered(self, env, tmp_path, db_url):
        """`load` killed while writing a new version: the current rows are untouched, and recovery
        drops whatever the dead load had created."""
        settings, db = env
        path = tmp_path / "codes.csv"
        load(db, settings, path, [["code"], ["A"], ["B"]])
        write_csv(path, [["code"], *([f"C{i}"] for i in range(5000))])
        with db.read() as conn:
            before = set(sa.inspect(conn).get_table_names(schema="bkp"))
        (tmp_path / "config").mkdir(exist_ok=True)
        env_vars = {
            **os.environ,
            "DATABASE_URL": db_url,
            "DATA_DIR": str(tmp_path / "data"),
            "DROPOFF_BASE_PATH": str(tmp_path / "dropoff"),
            "CONFIG_DIR": str(tmp_path / "config"),
            "INGEST_BATCH_SIZE": "100",
            "REFDATA_FAULTS": "stage.batch@5=sleep:60",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend", "load", str(path)],
            cwd=ROOT,
            env=env_vars,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not _processing(db):
                time.sleep(0.1)
            assert _processing(db), "the load never started"
            time.sleep(1.0)  # well into the sleeping fifth batch
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

        with db.read() as conn:
            left = catalogue.loading_versions(conn, db)
        # SQLite commits a new version batch by batch: the dead load left its table behind.
        # PostgreSQL wrote it in one transaction, which died with the process.
        assert len(left) == (1 if db.adapter.commits_while_loading else 0)

        claim.recover_stale(db)
        versions.drop_orphans(db)

        with db.read() as conn:
            after = set(sa.inspect(conn).get_table_names(schema="bkp"))
            states = [v.state for v in catalogue.versions_of(conn, db, "codes")]
        assert after == before
        assert states == [catalogue.CURRENT]
        assert export_rows(db, "codes") == [["code"], ["A"], ["B"]]


def _processing(db) -> bool:
    t = db.catalog.tracking
    with db.read() as conn:
        return bool(conn.execute(sa.select(sa.func.count()).where(t.c.status == "processing")).scalar_one())
