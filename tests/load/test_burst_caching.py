"""What makes a burst of small files cheap, and stays correct: the reflected-table cache, deferred
tracking writes and the skipped CleverCSV tie-break, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from backend import faults, tracking
from backend.config import Settings
from backend.db.engine import Database
from backend.detection.dialect import detect_dialect
from backend.errors import FileRejectedError
from backend.load.evolve import add_column
from backend.load.loader import LoadHooks, load_file
from backend.load.plan import metadata_columns
from backend.models import LoadRequest, LoadType
from backend.tracking import events as tracking_events
from tests.support import export_rows, make_settings, open_db, write_csv

PEOPLE = [["id", "name"], ["1", "Ann"], ["2", "Bob"]]


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[tuple[Settings, Database, Database]]:
    """Settings, the loader's database, and a second, independent one (as a second daemon has)."""
    settings = make_settings(tmp_path, db_url)
    db = open_db(settings)
    other = open_db(settings)
    yield settings, db, other
    other.dispose()
    db.dispose()


def load(settings: Settings, db: Database, path: Path, load_type: LoadType = LoadType.FULLLOAD) -> Any:
    return load_file(db, settings, LoadRequest(path=path, load_type=load_type))


def policy(settings: Settings, table: str, text: str) -> None:
    folder = settings.config_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{table}.yaml").write_text(text, encoding="utf-8")


def reflect(db: Database, name: str = "people", schema: str = "ref") -> sa.Table | None:
    with db.read() as conn:
        return db.reflect(conn, name, schema)


def events_of(db: Database, tracking_id: int) -> list[str]:
    e = db.catalog.events
    with db.read() as conn:
        query = sa.select(e.c.event).where(e.c.tracking_id == tracking_id).order_by(e.c.id)
        return [r.event for r in conn.execute(query)]


def tracking_row(db: Database, tracking_id: int) -> dict[str, Any]:
    t = db.catalog.tracking
    with db.read() as conn:
        return dict(conn.execute(sa.select(t).where(t.c.id == tracking_id)).mappings().one())


class TestReflectionCache:
    def test_unchanged_table_is_reflected_once(self, env, tmp_path):
        """A table nobody changed comes back as the very same cached definition."""
        settings, db, _ = env
        load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE))
        first = reflect(db)
        assert first is not None and reflect(db) is first

    def test_column_added_by_another_process_is_seen_and_not_added_twice(self, env, tmp_path):
        """After a second daemon adds a column, the next load uses it instead of a stale definition."""
        settings, db, other = env
        policy(settings, "people", "schema_evolution: add_columns\n")
        load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE), LoadType.APPEND)
        assert "email" not in reflect(db).c
        with other.write() as conn:
            add_column(conn, other.reflect(conn, "people", "ref"), "email", other.adapter.text_type(40))
        assert "email" in reflect(db).c
        # A stale definition would plan to add email again, and the ALTER would fail.
        with_email = [["id", "name", "email"], ["3", "Cy", "c@x.org"]]
        load(settings, db, write_csv(tmp_path / "people.csv", with_email), LoadType.APPEND)
        assert export_rows(db, "people") == [
            ["id", "name", "email"],
            ["1", "Ann", ""],
            ["2", "Bob", ""],
            with_email[1],
        ]

    def test_table_dropped_and_recreated_by_another_process_is_reflected_anew(self, env, tmp_path):
        """A table another process drops and creates with other columns is loaded under its new columns."""
        settings, db, other = env
        load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE))
        assert reflect(db) is not None
        with other.write() as conn:  # one transaction: this process never sees the table missing
            other.reflect(conn, "people", "ref").drop(conn)
            sa.Table(
                "people",
                sa.MetaData(),
                sa.Column("code", sa.String(10)),
                sa.Column("label", sa.String(10)),
                *metadata_columns(),
                schema="ref",
            ).create(conn)
        assert [c.name for c in reflect(db).c][:2] == ["code", "label"]
        load(settings, db, write_csv(tmp_path / "people.csv", [["code", "label"], ["X", "ex"]]))
        assert export_rows(db, "people") == [["code", "label"], ["X", "ex"]]

    def test_column_widened_by_another_process_is_seen(self, tmp_path, pg_url):
        """On PostgreSQL a length change by another session (same names) invalidates the definition."""
        settings = make_settings(tmp_path, pg_url)
        db, other = open_db(settings), open_db(settings)
        try:
            load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE))
            assert reflect(db).c["name"].type.length is None  # a new version's text is unbounded
            with other.write() as conn:
                live = other.reflect(conn, "people", "ref")
                other.adapter.widen_column(conn, live, "name", sa.String(500))
            assert reflect(db).c["name"].type.length == 500
        finally:
            other.dispose()
            db.dispose()

    def test_evolution_by_this_process_is_used_by_the_next_load(self, env, tmp_path):
        """After add_columns evolved the cached table, the next file with the new column loads as is."""
        settings, db, _ = env
        policy(settings, "people", "schema_evolution: add_columns\n")
        load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE), LoadType.APPEND)
        wider = [["id", "name", "tier"], ["3", "Cy", "gold"]]
        load(settings, db, write_csv(tmp_path / "people.csv", wider), LoadType.APPEND)
        assert "tier" in reflect(db).c
        result = load(settings, db, write_csv(tmp_path / "people.csv", [wider[0], ["4", "Di", "tin"]]))
        assert result.rows_loaded == 1
        assert export_rows(db, "people") == [wider[0], ["4", "Di", "tin"]]

    def test_ddl_rolled_back_leaves_no_stale_definition(self, env, tmp_path):
        """A definition reflected inside a transaction whose ALTER rolled back is not handed out later."""
        settings, db, _ = env
        load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE))
        with pytest.raises(RuntimeError), db.write() as conn:
            add_column(conn, db.reflect(conn, "people", "ref"), "ghost", sa.Integer())
            assert "ghost" in db.reflect(conn, "people", "ref").c
            raise RuntimeError("roll back")
        assert "ghost" not in reflect(db).c
        load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE))
        assert export_rows(db, "people") == PEOPLE

    def test_missing_table_is_none(self, env):
        """Reflecting a table that does not exist gives None, on every call."""
        _, db, _ = env
        assert reflect(db, "nothing_here") is None
        assert reflect(db, "nothing_here") is None


class TestDeferredTracking:
    def test_small_load_records_schema_report_and_every_event_in_order(self, env, tmp_path):
        """The deferred schema report and staged event land with the publish, in their order."""
        settings, db, _ = env
        result = load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE))
        row = tracking_row(db, result.tracking_id)
        assert json.loads(row["schema_report"])["table"] == "people"
        assert row["status"] == "loaded"
        assert events_of(db, result.tracking_id) == [
            "started",
            "detected",
            "staged",
            "validated",
            "published",
        ]
        assert not tracking.pending(db, result.tracking_id)

    @pytest.mark.parametrize("small", [True, False])
    def test_detection_of_a_small_file_waits_for_the_publish_a_large_ones_does_not(
        self, env, tmp_path, monkeypatch, small
    ):
        """While its rows are written, a large file's row shows its detection; a small one's not yet."""
        from backend.load import loader

        settings, db, other = env
        if not small:
            monkeypatch.setattr(loader, "DEFER_DETECTION_BELOW_BYTES", 1)
        seen: list[Any] = []

        def check_cancel(tracking_id: int, *, final: bool = False, requested: bool | None = None) -> None:
            if not final and not seen:  # between batches: a reader elsewhere looks at the row
                seen.append(tracking_row(other, tracking_id)["detected_encoding"])

        result = load_file(
            db,
            settings,
            LoadRequest(path=write_csv(tmp_path / "people.csv", PEOPLE)),
            LoadHooks(check_cancel=check_cancel),
        )
        assert seen == [None if small else "utf-8"]
        row = tracking_row(db, result.tracking_id)
        assert (row["detected_encoding"], row["table_name"]) == ("utf-8", "people")
        assert events_of(db, result.tracking_id)[:2] == ["started", "detected"]

    def test_failed_publish_still_records_the_deferred_writes(self, env, tmp_path, monkeypatch):
        """When the publish transaction rolls back, the deferred writes are kept and land with the failure."""
        settings, db, _ = env
        monkeypatch.setenv("REFDATA_FAULTS", "publish.before_commit")
        faults.reset()
        with pytest.raises(FileRejectedError) as caught:
            load(settings, db, write_csv(tmp_path / "people.csv", PEOPLE))
        monkeypatch.delenv("REFDATA_FAULTS")
        tracking_id = caught.value.details["tracking_id"]
        row = tracking_row(db, tracking_id)
        assert row["status"] == "error"
        assert json.loads(row["schema_report"])["table"] == "people"
        assert events_of(db, tracking_id) == ["started", "detected", "staged", "failed"]
        assert not tracking.pending(db, tracking_id)

    def test_deferred_write_waits_for_the_next_write_of_its_row(self, env, tmp_path):
        """A deferred value is not in the row until the row's next write, which carries it."""
        _, db, _ = env
        request = LoadRequest(path=tmp_path / "x.csv")
        tracking_id = tracking.start(db, request, table="x", size=1, mtime=1.0)
        tracking.defer(db, tracking_id, event=("staged", {"rows": 1}), schema_report='{"a":1}')
        tracking.event(db, tracking_id, "extra")  # joins the queue: recent writes are waiting
        assert tracking_row(db, tracking_id)["schema_report"] is None
        assert tracking.pending(db, tracking_id)
        tracking.update(db, tracking_id, rows_done=5)
        row = tracking_row(db, tracking_id)
        assert (row["schema_report"], row["rows_done"]) == ('{"a":1}', 5)
        assert events_of(db, tracking_id) == ["started", "staged", "extra"]

    def test_deferred_writes_survive_a_rolled_back_carrier(self, env, tmp_path):
        """Deferred writes flushed into a transaction that rolls back are queued again, once."""
        _, db, _ = env
        tracking_id = tracking.start(db, LoadRequest(path=tmp_path / "x.csv"), table="x", size=1, mtime=1.0)
        tracking.defer(db, tracking_id, event=("staged", {}), schema_report="{}")
        with pytest.raises(RuntimeError), db.write() as conn:
            tracking.add_event(conn, db, tracking_id, "doomed")
            raise RuntimeError("roll back")
        assert tracking.pending(db, tracking_id)
        tracking.finish_failed(db, tracking_id, "error", RuntimeError("boom"))
        assert events_of(db, tracking_id) == ["started", "staged", "failed"]
        assert tracking_row(db, tracking_id)["schema_report"] == "{}"

    def test_deferred_writes_survive_a_connection_lost_mid_transaction(self, env, tmp_path):
        """A carrier whose connection was lost re-queues the deferred writes instead of failing."""
        _, db, _ = env
        tracking_id = tracking.start(db, LoadRequest(path=tmp_path / "x.csv"), table="x", size=1, mtime=1.0)
        tracking.defer(db, tracking_id, event=("staged", {}), schema_report="{}")
        with db.engine.connect() as conn:
            conn.begin()
            tracking.add_event(conn, db, tracking_id, "doomed")
            conn.invalidate()  # what a server that went away leaves behind
            conn.rollback()
        assert tracking.pending(db, tracking_id)
        tracking.finish_failed(db, tracking_id, "retry", RuntimeError("server gone"))
        assert events_of(db, tracking_id) == ["started", "staged", "failed"]

    def test_old_deferred_write_is_written_at_once(self, env, tmp_path, monkeypatch):
        """A queue older than MAX_DEFER_SECONDS is written at the next call instead of waiting longer."""
        _, db, _ = env
        monkeypatch.setattr(tracking_events, "MAX_DEFER_SECONDS", 0.0)
        tracking_id = tracking.start(db, LoadRequest(path=tmp_path / "x.csv"), table="x", size=1, mtime=1.0)
        tracking.defer(db, tracking_id, event=("staged", {}), schema_report="{}")
        assert not tracking.pending(db, tracking_id)
        assert tracking_row(db, tracking_id)["schema_report"] == "{}"
        assert events_of(db, tracking_id) == ["started", "staged"]


class TestCleverCsvTieBreak:
    def test_not_asked_when_one_delimiter_clearly_wins(self):
        """A comma file whose cells hold semicolons is decided without CleverCSV."""
        text = "id,name,note\n" + "".join(f"{i},n{i},a;b\n" for i in range(20))
        guess = detect_dialect(text)
        assert guess.dialect.delimiter == ","
        assert guess.clevercsv is None

    def test_asked_when_two_delimiters_score_alike(self):
        """Two delimiters that read the sample equally well still get CleverCSV's opinion."""
        # A near tie: comma and semicolon both read every line consistently.
        text = "a,b;c,d\n" + "".join(f"{i},{i};{i},{i}\n" for i in range(10))
        guess = detect_dialect(text)
        assert guess.clevercsv is not None
