"""The daemon as a real subprocess on a real folder, with SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.daemon.support import Daemon, data_files, drop, files_in, query, wait_for

pytestmark = pytest.mark.daemon


def loaded_rows(d: Daemon, table: str) -> list[tuple]:
    return [
        tuple(r) for r in query(d.url, d.root, f"SELECT * FROM ref.{table} ORDER BY _load_id, _row_number")
    ]


def tracking(d: Daemon) -> list:
    return query(
        d.url,
        d.root,
        "SELECT id, file_name, status, rows_loaded, moved_to, error_message "
        'FROM ref."File_Monitor_Tracking" ORDER BY id'.replace('"', '"'),
    )


class TestLifecycle:
    def test_dropped_file_is_loaded_and_moved_to_processed(self, daemon: Daemon):
        """A stable file is loaded into ref.<table>, tracked as loaded, and moved to processed/ with a
        timestamp.
        """
        daemon.start().wait_healthy()
        folder = daemon.folder("ref", "fullload")
        drop(folder / "currencies_2024-01-31.csv", "code,name\nEUR,Euro\nUSD,US Dollar\n")
        wait_for(lambda: data_files(folder, "processed"), 30, what="file in processed/")
        moved = data_files(folder, "processed")[0]
        assert moved.name.endswith("_currencies_2024-01-31.csv") and moved.name[:8].isdigit()
        assert not (folder / "currencies_2024-01-31.csv").exists()
        rows = query(daemon.url, daemon.root, "SELECT code, name FROM ref.currencies ORDER BY _row_number")
        assert [tuple(r) for r in rows] == [("EUR", "Euro"), ("USD", "US Dollar")]
        track = query(
            daemon.url,
            daemon.root,
            'SELECT status, rows_loaded, is_reference_data, moved_to FROM ref."File_Monitor_Tracking"',
        )
        assert len(track) == 1 and track[0][0] == "loaded" and track[0][1] == 2 and track[0][2]
        assert track[0][3] == str(moved)

    def test_bad_file_goes_to_error_with_a_sidecar_and_the_daemon_keeps_going(self, daemon: Daemon):
        """A ragged file lands in error/ with a sidecar naming the reason and the line; the next file still
        loads.
        """
        daemon.start().wait_healthy()
        folder = daemon.folder("noref", "append")
        drop(folder / "broken.csv", "a,b\n1,2\n3,4,5\n")
        wait_for(lambda: data_files(folder, "error"), 30, what="file in error/")
        moved = data_files(folder, "error")[0]
        sidecar_path = moved.parent / (moved.name + ".error.json")
        # The sidecar is written right after the move; give it a moment on a busy machine.
        wait_for(sidecar_path.exists, 10, what="sidecar")
        sidecar = json.loads(sidecar_path.read_text())
        assert "line 3" in sidecar["reason"] and sidecar["stage"] == "stage" and sidecar["rows"] == [3]
        assert sidecar["tracking_id"] is not None
        drop(folder / "fine.csv", "a,b\n1,2\n")
        wait_for(lambda: data_files(folder, "processed"), 30, what="second file processed")
        assert daemon.alive()

    def test_skipped_rows_wait_in_error_next_to_the_loaded_file_name(self, tmp_path: Path, db_url: str):
        """With RAGGED_ROWS=skip the good rows load and the skipped ones land in error/ as a rejects file."""
        daemon = Daemon(tmp_path, db_url, env_overrides={"RAGGED_ROWS": "skip"})
        try:
            daemon.start().wait_healthy()
            folder = daemon.folder("noref", "append")
            drop(folder / "mixed.csv", "a,b\n1,2\n3,4,5\n6,7\n")
            wait_for(lambda: data_files(folder, "processed"), 30, what="file in processed/")
            moved = data_files(folder, "processed")[0]
            rejects = folder / "error" / (moved.name + ".rejects.csv")
            wait_for(rejects.exists, 10, what="rejects file in error/")
            assert rejects.read_text().splitlines() == ["line,fields", "3,3,4,5"]
            assert data_files(folder, "error") == []  # nothing to retry: the file itself loaded
            rows = query(daemon.url, daemon.root, "SELECT a, b FROM ref.mixed ORDER BY _row_number")
            assert [tuple(r) for r in rows] == [("1", "2"), ("6", "7")]
            assert not list((daemon.root / "data" / "rejects").glob("*"))  # moved, not copied
        finally:
            daemon.terminate()

    def test_identical_content_is_a_duplicate_and_not_appended_twice(self, daemon: Daemon):
        """The same bytes dropped twice into append are loaded once; the second is recorded as duplicate."""
        daemon.start().wait_healthy()
        folder = daemon.folder("ref", "append")
        drop(folder / "events.csv", "id\n1\n2\n")
        wait_for(lambda: len(data_files(folder, "processed")) == 1, 30, what="first file processed")
        drop(folder / "events.csv", "id\n1\n2\n")
        wait_for(lambda: len(data_files(folder, "processed")) == 2, 30, what="second file processed")
        assert len(loaded_rows(daemon, "events")) == 2
        statuses = [
            r[0]
            for r in query(
                daemon.url, daemon.root, 'SELECT status FROM ref."File_Monitor_Tracking" ORDER BY id'
            )
        ]
        assert statuses == ["loaded", "duplicate"]


class TestStability:
    def test_slowly_written_file_is_loaded_only_when_complete(self, tmp_path: Path, db_url: str):
        """A file written in chunks with pauses shorter than the stability window is loaded whole, once."""
        d = Daemon(tmp_path, db_url, {"STABILITY_CHECKS": "5"}).start()
        try:
            d.wait_healthy()
            folder = d.folder("noref", "fullload")
            path = folder / "slow.csv"
            with path.open("w", encoding="utf-8") as f:
                f.write("n\n")
                for chunk in range(8):
                    f.write("".join(f"{chunk * 100 + i}\n" for i in range(100)))
                    f.flush()
                    time.sleep(0.4)  # < 5 checks x 0.2 s
            wait_for(lambda: data_files(folder, "processed"), 40, what="slow file processed")
            assert len(loaded_rows(d, "slow")) == 800
            assert [r[0] for r in query(d.url, d.root, 'SELECT status FROM ref."File_Monitor_Tracking"')] == [
                "loaded"
            ]
        finally:
            d.terminate()

    def test_file_deleted_while_waiting_leaves_no_trace(self, tmp_path: Path, db_url: str):
        """A file removed before it became stable is forgotten: no tracking row, nothing moved."""
        d = Daemon(tmp_path, db_url, {"STABILITY_CHECKS": "50"}).start()
        try:
            d.wait_healthy()
            folder = d.folder("ref", "fullload")
            path = drop(folder / "gone.csv", "a\n1\n")
            wait_for(
                lambda: any(
                    "gone.csv" in w["file"] for w in d.get_json("/status")[1]["waiting_for_stability"]
                ),
                20,
                what="file waiting for stability",
            )
            path.unlink()
            wait_for(lambda: not d.get_json("/status")[1]["waiting_for_stability"], 20, what="file forgotten")
            assert query(d.url, d.root, 'SELECT COUNT(*) FROM ref."File_Monitor_Tracking"')[0][0] == 0
            assert not files_in(folder, "processed") and not files_in(folder, "error")
        finally:
            d.terminate()

    def test_done_marker_makes_a_file_ready_at_once_and_moves_with_it(self, tmp_path: Path, db_url: str):
        """With a <name>.done marker the file loads without waiting for the checks, and the marker moves
        along.
        """
        d = Daemon(tmp_path, db_url, {"STABILITY_CHECKS": "1000"}).start()
        try:
            d.wait_healthy()
            folder = d.folder("ref", "fullload")
            drop(folder / "flags.csv", "flag\nx\n")
            (folder / "flags.csv.done").write_text("")
            wait_for(lambda: data_files(folder, "processed"), 20, what="marked file processed")
            # The marker follows its file in the same move step.
            wait_for(
                lambda: any(p.name.endswith("flags.csv.done") for p in files_in(folder, "processed")),
                10,
                what="marker moved along",
            )
            assert not (folder / "flags.csv.done").exists()
        finally:
            d.terminate()


class TestOperations:
    def test_health_endpoints_answer_over_http(self, tmp_path: Path, db_url: str):
        """/healthz, /readyz, /metrics and /status answer; with a token all but /healthz require it."""
        d = Daemon(tmp_path, db_url, {"HEALTH_TOKEN": "s3cret-token"}).start()
        try:
            d.wait_healthy()
            assert d.get("/readyz")[0] == 401
            assert d.get("/readyz", token="wrong")[0] == 401
            code, body = d.get_json("/readyz", token="s3cret-token")
            assert code == 200 and body["checks"]["database"]["status"] == "pass"
            code, metrics = d.get("/metrics", token="s3cret-token")
            assert code == 200 and b"refdata_files_total" in metrics and b"refdata_queue_depth" in metrics
            code, status = d.get_json("/status", token="s3cret-token")
            assert code == 200 and "waiting_for_stability" in status and "in_flight" in status
        finally:
            d.terminate()

    def test_sigterm_stops_the_daemon_with_exit_code_zero(self, daemon: Daemon):
        """SIGTERM stops discovery and exits 0 promptly."""
        daemon.start().wait_healthy()
        started = time.monotonic()
        assert daemon.terminate(timeout=20) == 0
        assert time.monotonic() - started < 15
