"""Operator commands and housekeeping: status, history, retry, cancel, retention, bad bytes."""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa

from backend.daemon import folders as lifecycle
from backend.errors import DetectionError, IngestError, NotFoundError
from backend.load.loader import load_file
from backend.models import LoadRequest
from backend.ops.export import export_table
from backend.ops.retention import prune_backups
from backend.ops.status import request_cancel
from tests.support import export_rows, kept_versions, make_settings, open_db, run_cli, write_csv


def cli_env(monkeypatch, settings) -> None:
    """Point the CLI (which reads the environment) at the test's database and folders."""
    monkeypatch.setenv("DATABASE_URL", settings.url)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DROPOFF_BASE_PATH", str(settings.dropoff_base_path))
    monkeypatch.setenv("HEALTH_ENABLED", "false")


class TestStatusAndHistory:
    def test_status_json_lists_last_results_and_errors(self, env, tmp_path, monkeypatch, capsys):
        """status --json shows the loaded file in last_results and the failed one in last_errors."""
        settings, db = env
        good = write_csv(tmp_path / "good.csv", [["a"], ["1"]])
        load_file(db, settings, LoadRequest(path=good))
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b\n1,2\nx\n4,5\n")
        with pytest.raises(IngestError):
            load_file(db, settings, LoadRequest(path=bad))
        cli_env(monkeypatch, settings)
        code, out, _ = run_cli(["status", "--json"], capsys)
        data = json.loads(out)
        assert code == 0
        assert [r["file_name"] for r in data["last_results"]] == ["bad.csv", "good.csv"]
        assert data["last_errors"][0]["file_name"] == "bad.csv"
        assert "line 3" in data["last_errors"][0]["error_message"]

    def test_history_shows_row_count_changes_between_loads(self, env, tmp_path, monkeypatch, capsys):
        """history TABLE lists the loads newest first with the change in rows."""
        settings, db = env
        path = tmp_path / "levels.csv"
        write_csv(path, [["l"], ["1"], ["2"]])
        load_file(db, settings, LoadRequest(path=path))
        write_csv(path, [["l"], ["1"], ["2"], ["3"], ["4"]])
        load_file(db, settings, LoadRequest(path=path))
        cli_env(monkeypatch, settings)
        code, out, _ = run_cli(["history", "levels", "--json"], capsys)
        rows = json.loads(out)
        assert code == 0
        assert [r["rows_loaded"] for r in rows] == [4, 2]
        assert rows[0]["rows_change"] == 2 and rows[0]["backup_version"] == 1


class TestRetryAndCancel:
    def test_retry_puts_an_error_file_back_under_its_original_name(self, env, tmp_path, monkeypatch, capsys):
        """retry FILE moves a file from error/ back into its drop folder; its sidecar leaves error/ too."""
        settings, _db = env
        folder = settings.dropoff_base_path / "reference_data_table" / "fullload"
        lifecycle.ensure_directories(settings.dropoff_base_path)
        source = folder / "rates.csv"
        source.write_text("a\n1\n")
        moved = lifecycle.move_to_error(source, folder, 1_700_000_000.0, {"reason": "test"})
        cli_env(monkeypatch, settings)
        code, out, _ = run_cli(["retry", str(moved)], capsys)
        assert code == 0 and "rates.csv" in out
        assert source.read_text() == "a\n1\n"
        assert not moved.exists() and not lifecycle.sidecar_path(moved).exists()

    def test_retry_of_a_file_outside_error_is_refused_with_exit_1(self, env, tmp_path, monkeypatch, capsys):
        """retry on a file that is not in an error/ folder fails with a message, not a traceback."""
        settings, _db = env
        stray = tmp_path / "x.csv"
        stray.write_text("a\n")
        cli_env(monkeypatch, settings)
        code, _out, err = run_cli(["retry", str(stray)], capsys)
        assert code == 1 and "not in an error/ folder" in err

    def test_cancel_of_a_load_that_is_not_running_is_refused(self, env, tmp_path):
        """cancel ID on a finished load says it is not running."""
        settings, db = env
        result = load_file(db, settings, LoadRequest(path=write_csv(tmp_path / "c.csv", [["a"], ["1"]])))
        with pytest.raises(IngestError, match="not running"):
            request_cancel(db, result.tracking_id)


class TestRetention:
    def test_prune_keeps_only_the_newest_versions(self, env, tmp_path):
        """With KEEP_VERSIONS=2, older kept versions are dropped (whole tables) and the newest two remain."""
        settings, db = env
        path = tmp_path / "codes.csv"
        for i in range(5):
            write_csv(path, [["c"], [str(i)]])
            load_file(db, settings, LoadRequest(path=path))
        deleted = prune_backups(db, 2)
        assert deleted == 2
        assert kept_versions(db, "codes") == [3, 4]
        with pytest.raises(NotFoundError):
            export_rows(db, "codes", version=1)
        assert export_rows(db, "codes", version=3) == [["c"], ["2"]]


class TestUndecodable:
    def test_invalid_utf8_deep_in_a_file_fails_with_line_and_offset(self, env, tmp_path):
        """Non-UTF-8 bytes past the detection sample fail the load, naming the line and byte offset."""
        settings, db = env
        path = tmp_path / "deep.csv"
        head = "id,name\n" + "".join(f"{i},name {i} é\n" for i in range(60000))
        path.write_bytes(head.encode("utf-8") + b"60001,bad \xff\xfe byte\n")
        with pytest.raises(DetectionError) as info:
            load_file(db, settings, LoadRequest(path=path))
        assert "line 60002" in str(info.value) and "byte" in str(info.value)
        assert not sa.inspect(db.engine).has_table("deep", schema="ref")


@pytest.mark.mssql
def test_load_and_export_round_trip_on_a_live_sql_server(tmp_path, mssql_url):
    """On a live SQL Server (MSSQL_TEST_URL), a file loads and exports back unchanged."""
    settings = make_settings(tmp_path, mssql_url)
    db = open_db(settings)
    rows = [["code", "name"], ["NA", "Namibia"], ["CI", "Côte d'Ivoire"]]
    result = load_file(db, settings, LoadRequest(path=write_csv(tmp_path / "mssql_countries.csv", rows)))
    import io

    out = io.StringIO()
    export_table(db, result.table, out)
    assert out.getvalue().splitlines() == ["code,name", "NA,Namibia", "CI,Côte d'Ivoire"]
    db.dispose()


class TestCancellation:
    def test_cancel_between_batches_rolls_back_and_marks_the_row_cancelled(self, env, tmp_path):
        """A cancel raised between batches leaves the table as it was and the tracking row says cancelled."""
        from backend.errors import CancelledError
        from backend.load.loader import LoadHooks

        settings, db = env
        path = write_csv(tmp_path / "big.csv", [["n"], *[[str(i)] for i in range(50)]])
        load_file(db, settings, LoadRequest(path=path))
        write_csv(path, [["n"], *[[str(i)] for i in range(100, 400)]])
        small = make_settings(tmp_path, settings.url, ingest_batch_size=50)
        calls = []

        def check_cancel(tracking_id: int, *, final: bool = False, requested: bool | None = None) -> None:
            calls.append(tracking_id)
            if len(calls) == 2:
                raise CancelledError("big.csv: cancelled by operator (test)", stage="cancel")

        with pytest.raises(CancelledError):
            load_file(db, small, LoadRequest(path=path), LoadHooks(check_cancel=check_cancel))
        out = io.StringIO()
        export_table(db, "big", out)
        assert out.getvalue().splitlines() == ["n", *[str(i) for i in range(50)]]
        t = db.catalog.tracking
        with db.read() as conn:
            status = conn.execute(sa.select(t.c.status).where(t.c.id == calls[0])).scalar_one()
        assert status == "cancelled"
