"""The defects the campaign found, each pinned by a small, fast test.

Each is a plain test that fails on the code before its fix: those in the daemon (settle, claim,
watcher, lifecycle, engine) and those in the load path (loader, detection, driver errors), which
were first pinned as strict xfails and are fixed now.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from backend import tracking
from backend.config import Settings
from backend.daemon import claim, housekeeping, probes, settle
from backend.daemon import folders as lifecycle
from backend.daemon.metrics import Metrics
from backend.daemon.runtime import Runtime
from backend.daemon.stability import ReadyFile, StabilityTracker
from backend.daemon.watcher import scan
from backend.db import open_database
from backend.db.engine import is_transient
from backend.errors import DatabaseUnavailableError, FileRejectedError, IngestError
from backend.models import LoadRequest, LoadType
from tests.reliability.support import admin, free_port
from tests.support import make_settings, open_db

pytestmark = [pytest.mark.reliability]


# ------------------------------------------------------------------------------------ helpers
def make_runtime(tmp_path: Path, url: str | None = None, **overrides: Any) -> Runtime:
    """What `loop.run` builds, without the loop: real settings, database, tracker and folders."""
    settings = make_settings(
        tmp_path,
        url or f"sqlite:///{tmp_path / 'rt.db'}",
        monitor_interval=0.1,
        stability_checks=1,
        **overrides,
    )
    lifecycle.ensure_directories(settings.dropoff_base_path)
    return Runtime(
        settings=settings,
        db=open_db(settings),
        stop=threading.Event(),
        tracker=StabilityTracker(1),
        metrics=Metrics(),
    )


@pytest.fixture
def rt(tmp_path: Path):
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.db.dispose()


def folder(rt: Runtime, kind: str = "none_reference_data_table", mode: str = "append") -> Path:
    return rt.settings.dropoff_base_path / kind / mode


def ready(path: Path) -> ReadyFile:
    info = path.stat()
    return ReadyFile(path=path, size=info.st_size, mtime=info.st_mtime)


def statuses(rt: Runtime) -> list[str]:
    with rt.db.engine.connect() as conn:
        return [
            s for (s,) in conn.execute(sa.text('SELECT status FROM ref."File_Monitor_Tracking" ORDER BY id'))
        ]


def rows_of(rt: Runtime, sql: str) -> list[Any]:
    with rt.db.engine.connect() as conn:
        return list(conn.execute(sa.text(sql)).all())


def unreachable(tmp_path: Path) -> Any:
    """A database nobody listens to: every call fails at once with DatabaseUnavailableError."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    return open_database(make_settings(tmp_path / "away", url, db_connect_timeout_seconds=1))


# --------------------------------------------------------------------------- fixed: settle
class TestLoadedFileThatCannotBeMoved:
    def test_a_loaded_file_stays_loaded_when_processed_is_unusable_and_moves_later(self, rt):
        """A committed load whose move fails stays `loaded` (not error/) and is later moved, not reloaded."""
        drop = folder(rt)
        processed = drop / "processed"
        shutil.rmtree(processed)
        processed.write_text("not a folder")  # the move fails (ENOTDIR), even for root
        path = drop / "events.csv"
        path.write_text("id\n1\n2\n")
        assert settle.process_file(rt, ready(path)) == "loaded"
        assert path.exists() and statuses(rt) == ["loaded"]
        processed.unlink()
        processed.mkdir()
        assert settle.process_file(rt, ready(path)) == "loaded"
        assert not path.exists() and len(list(processed.iterdir())) == 1
        assert statuses(rt) == ["loaded"]
        assert rows_of(rt, "SELECT COUNT(*) FROM ref.events")[0][0] == 2
        moved_to = rows_of(rt, 'SELECT moved_to FROM ref."File_Monitor_Tracking"')[0][0]
        assert Path(moved_to).parent == processed

    def test_a_later_fullload_does_not_free_a_loaded_file_that_was_never_moved(self, rt):
        """A fullload releases older content keys, but not of a loaded file still waiting to be moved."""
        drop = folder(rt, "none_reference_data_table", "fullload")
        processed = drop / "processed"
        shutil.rmtree(processed)
        processed.write_text("not a folder")  # loads commit, their moves fail
        first, second = drop / "codes_20240101.csv", drop / "codes_20240102.csv"
        first.write_text("code\nA\n")
        assert settle.process_file(rt, ready(first)) == "loaded"
        second.write_text("code\nB\n")
        assert settle.process_file(rt, ready(second)) == "loaded"
        processed.unlink()
        processed.mkdir()
        # The first file is seen again: it was loaded once and must only be moved now.
        assert settle.process_file(rt, ready(first)) == "loaded"
        assert not first.exists() and statuses(rt) == ["loaded", "loaded"]
        assert rows_of(rt, "SELECT code FROM ref.codes") == [("B",)]


class TestRefusedFileThatCannotBeMoved:
    def test_a_refused_file_waits_while_error_is_unusable_then_lands_there_once(self, rt):
        """A refused file whose move to error/ fails is retried (no final row), then ends in error/ once."""
        drop = folder(rt, "reference_data_table", "fullload")
        error = drop / "error"
        shutil.rmtree(error)
        error.write_text("not a folder")
        path = drop / "broken.csv"
        path.write_text("a,b\n1,2,3\n")
        assert settle.process_file(rt, ready(path)) == "retry"
        assert path.exists() and statuses(rt) == ["retry"]
        error.unlink()
        error.mkdir()
        assert settle.process_file(rt, ready(path)) == "error"
        assert statuses(rt) == ["retry", "error"]
        assert [p.name.endswith(".error.json") for p in sorted(error.iterdir())].count(True) == 1


class TestDuplicateRace:
    def test_no_duplicate_row_for_a_file_another_daemon_moved_meanwhile(self, rt):
        """A daemon that hashed a file just before another one loaded and moved it records nothing."""
        drop = folder(rt)
        path = drop / "codes.csv"
        path.write_text("code\nA\n")
        sha, size, mtime = claim.hash_file(path)
        assert settle.process_file(rt, ready(path)) == "loaded"
        request = LoadRequest(path=path, load_type=LoadType.APPEND, is_reference=False, sha256=sha)
        outcome = claim.claim(rt.db, request, "codes", size, mtime)
        assert isinstance(outcome, claim.AlreadyLoaded) and not outcome.recovered
        assert settle.already_loaded(rt, path, drop, request, "codes", size, outcome) == "gone"
        assert statuses(rt) == ["loaded"]


class TestHeldFile:
    def test_a_file_held_by_another_daemon_is_looked_at_again(self, rt):
        """After "held", the file goes through the stability checks again instead of being dropped."""
        drop = folder(rt)
        path = drop / "held.csv"
        path.write_text("n\n1\n")
        sha, size, mtime = claim.hash_file(path)
        request = LoadRequest(path=path, load_type=LoadType.APPEND, is_reference=False, sha256=sha)
        other = claim.claim(rt.db, request, "held", size, mtime)
        assert isinstance(other, claim.Claimed)
        tracking.update(rt.db, other.tracking_id, owner="another-host:1:feed")  # alive: fresh heartbeat
        now = time.time() + 10
        rt.tracker.check([path], now)
        (item,) = rt.tracker.check([path], now + 1)
        assert settle.process_file(rt, item) == "held"
        rt.tracker.check([path], now + 2)
        assert rt.tracker.check([path], now + 3), "the held file was never handed out again"


class TestRefusedBeforeAnyClaim:
    def test_a_hard_link_is_refused_with_its_own_tracking_row_and_sidecar(self, rt, tmp_path):
        """A hard link to a file outside the dropoff is not loaded: error/, with a row and a reason."""
        secret = tmp_path / "secret.csv"
        secret.write_text("user,password\nroot,hunter2\n")
        path = folder(rt) / "linked.csv"
        os.link(secret, path)
        assert settle.process_file(rt, ready(path)) == "error"
        ((status, message, moved_to, row_id),) = rows_of(
            rt, 'SELECT status, error_message, moved_to, id FROM ref."File_Monitor_Tracking"'
        )
        assert status == "error" and "hard link" in message
        assert lifecycle.read_sidecar(Path(moved_to))["tracking_id"] == row_id
        assert not rows_of(rt, "SELECT name FROM ref.sqlite_master WHERE name = 'linked'")

    def test_a_fifo_is_moved_to_error_with_a_row_and_never_blocks_a_worker(self, rt):
        """A FIFO in a drop folder is reported by the scan and moved to error/ with a row, never opened."""
        path = folder(rt) / "pipe.csv"
        os.mkfifo(path)
        refused: dict[Path, str] = {}
        assert scan(rt.settings.dropoff_base_path, rt.settings, refused=refused) == []
        assert "FIFO" in refused[path]
        errors: list[BaseException] = []
        worker = threading.Thread(target=lambda: _record(errors, claim.hash_file, path), daemon=True)
        worker.start()
        worker.join(5)
        assert not worker.is_alive(), "hashing a FIFO blocked"
        assert isinstance(errors[0], FileRejectedError)
        assert settle.reject_entry(rt, path, refused[path]) == "error"
        ((status, message, moved_to),) = rows_of(
            rt, 'SELECT status, error_message, moved_to FROM ref."File_Monitor_Tracking"'
        )
        assert status == "error" and "FIFO" in message
        assert stat.S_ISFIFO(os.lstat(moved_to).st_mode)


def _record(errors: list[BaseException], func: Any, *args: Any) -> None:
    try:
        func(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test
        errors.append(exc)


def dead_owner() -> str:
    """The owner string of a daemon on this host that has exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}:dead"


class TestKilledBetweenStatusAndMove:
    def test_a_move_whose_owner_died_before_recording_it_is_found_and_recorded(self, rt):
        """Killed after the move but before recording it: the next daemon finds the file and records it."""
        path = folder(rt) / "killed.csv"
        path.write_text("n\n1\n")
        assert settle.process_file(rt, ready(path)) == "loaded"
        ((row_id, moved_to),) = rows_of(rt, 'SELECT id, moved_to FROM ref."File_Monitor_Tracking"')
        tracking.update(rt.db, row_id, moved_to=None, owner=dead_owner())
        assert claim.reconcile_moves(rt.db) == 1
        assert rows_of(rt, 'SELECT moved_to FROM ref."File_Monitor_Tracking"')[0][0] == moved_to

    def test_a_refusal_whose_owner_died_before_the_move_is_reopened(self, rt):
        """Killed after closing a row as `error` but before moving the file: the row stops being final."""
        drop = folder(rt, "reference_data_table", "fullload")
        path = drop / "bad.csv"
        path.write_text("a,b\n1,2,3\n")
        assert settle.process_file(rt, ready(path)) == "error"
        (row_id, moved_to) = rows_of(rt, 'SELECT id, moved_to FROM ref."File_Monitor_Tracking"')[0]
        os.replace(moved_to, path)  # as if the move never happened
        lifecycle.sidecar_path(Path(moved_to)).unlink()
        tracking.update(rt.db, row_id, moved_to=None, owner=dead_owner())
        assert claim.reconcile_moves(rt.db) == 1
        assert statuses(rt) == ["interrupted"]
        assert settle.process_file(rt, ready(path)) == "error"
        assert statuses(rt) == ["interrupted", "error"]


class TestDatabaseFailures:
    def test_backoff_grows_once_per_round_however_many_files_failed(self, rt):
        """Thirty files failing in the same round add one step of backoff (1 s), not thirty (60 s)."""
        before = time.monotonic()
        for _ in range(30):
            rt.outage.failed(DatabaseUnavailableError("down"))
        assert rt.outage.failures == 1
        assert rt.outage.retry_at - before < 2

    def test_an_attempt_the_database_could_not_close_is_closed_when_it_is_back(self, rt, tmp_path):
        """Our row left `processing` by a database failure is closed later, so the file loads, not "held"."""
        path = folder(rt) / "late.csv"
        path.write_text("n\n1\n")
        sha, size, mtime = claim.hash_file(path)
        request = LoadRequest(path=path, load_type=LoadType.APPEND, is_reference=False, sha256=sha)
        attempt = claim.claim(rt.db, request, "late", size, mtime)
        assert isinstance(attempt, claim.Claimed)
        real, rt.db = rt.db, unreachable(tmp_path)
        try:
            settle.close_attempt(rt, attempt.tracking_id, "the database went away")
        finally:
            rt.db.dispose()
            rt.db = real
        assert statuses(rt) == ["processing"]
        housekeeping.catch_up(rt)
        assert settle.process_file(rt, ready(path)) == "loaded"
        assert statuses(rt) == ["retry", "loaded"]

    def test_a_move_the_database_could_not_record_is_recorded_when_it_is_back(self, rt, tmp_path):
        """A file moved while the database was away gets its `moved_to` once the database answers again."""
        path = folder(rt) / "moved.csv"
        path.write_text("n\n1\n")
        assert settle.process_file(rt, ready(path)) == "loaded"
        (row_id,) = rows_of(rt, 'SELECT id FROM ref."File_Monitor_Tracking"')[0]
        target = folder(rt) / "processed" / "elsewhere.csv"
        real, rt.db = rt.db, unreachable(tmp_path)
        try:
            settle.record_move_later(rt, row_id, target)
        finally:
            rt.db.dispose()
            rt.db = real
        housekeeping.catch_up(rt)
        assert rows_of(rt, 'SELECT moved_to FROM ref."File_Monitor_Tracking"')[0][0] == str(target)

    @pytest.mark.postgres
    def test_readyz_fails_while_the_database_refuses_writes(self, tmp_path, pg_url):
        """After a failed load /readyz probes a write: read-only fails it, a healthy database only warns."""
        runtime = make_runtime(tmp_path, pg_url)
        database = sa.engine.make_url(pg_url).database
        try:
            runtime.outage.failed(DatabaseUnavailableError("database unavailable: earlier failure"))
            ok, body = probes.readiness(runtime)
            assert ok and body["checks"]["database"]["status"] == "warn"
            with admin(pg_url, "postgres") as conn:
                conn.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
            runtime.db.engine.dispose()
            ok, body = probes.readiness(runtime)
            assert not ok and body["checks"]["database"]["status"] == "fail"
            assert "read-only" in body["checks"]["database"]["output"]
        finally:
            with admin(pg_url, "postgres") as conn:
                conn.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
            runtime.db.dispose()


# ---------------------------------------------------------------- fixed: engine, lifecycle
class TestClassification:
    @pytest.mark.parametrize(
        "message",
        ["database or disk is full", "attempt to write a readonly database", "No space left on device"],
    )
    def test_a_full_or_read_only_sqlite_database_is_transient(self, message):
        """A full disk or a read-only database file is retried, never a reason to send the file to error/."""
        import sqlite3

        error = sa.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError(message))
        assert is_transient(error)


class TestSidecarModes:
    def test_the_sidecar_of_a_symlink_is_readable_by_its_owner_only(self, tmp_path):
        """A symlink's own mode is 0o777; the sidecar written for it must not be world-readable."""
        lifecycle.ensure_directories(tmp_path)
        drop = tmp_path / "reference_data_table" / "fullload"
        link = drop / "link.csv"
        link.symlink_to("/etc/hostname")
        moved = lifecycle.move_to_error(link, drop, time.time(), {"reason": "a symbolic link"})
        assert stat.S_IMODE(lifecycle.sidecar_path(moved).stat().st_mode) == 0o600


# ------------------------------------------------- found, not fixed here (files of others)
class TestDefectsElsewhere:
    def test_load_file_closes_its_row_when_the_claimed_file_is_gone(self, rt):
        """load_file closes the claimed tracking row when the file vanished before it could be opened."""
        from backend.load.loader import load_file

        path = folder(rt) / "gone.csv"
        path.write_text("n\n1\n")
        sha, size, mtime = claim.hash_file(path)
        request = LoadRequest(path=path, load_type=LoadType.APPEND, is_reference=False, sha256=sha)
        attempt = claim.claim(rt.db, request, "gone", size, mtime)
        assert isinstance(attempt, claim.Claimed)
        path.unlink()
        with pytest.raises(IngestError):
            load_file(
                rt.db,
                rt.settings,
                LoadRequest(
                    path=path, load_type=LoadType.APPEND, sha256=sha, tracking_id=attempt.tracking_id
                ),
            )
        assert statuses(rt) != ["processing"]

    def test_detection_never_follows_a_symlink(self, tmp_path):
        """Detection refuses a symlink instead of reading the file it points at."""
        from backend.detection import detect

        secret = tmp_path / "secret.csv"
        secret.write_text("user,password\nroot,hunter2\n")
        link = tmp_path / "link.csv"
        link.symlink_to(secret)
        with pytest.raises(IngestError):
            detect(link, Settings(_env_file=None))  # type: ignore[call-arg]

    def test_opening_a_fifo_for_loading_never_blocks(self, tmp_path):
        """The loader's open of a FIFO fails at once instead of waiting for a writer."""
        from backend.load.loader import open_regular_file

        fifo = tmp_path / "pipe.csv"
        os.mkfifo(fifo)
        errors: list[BaseException] = []
        worker = threading.Thread(target=lambda: _record(errors, open_regular_file, fifo), daemon=True)
        worker.start()
        worker.join(2)
        blocked = worker.is_alive()
        if blocked:  # release the thread: a writer that opens and closes at once
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            worker.join(5)
        assert not blocked, "open_regular_file blocked on a FIFO"

    @pytest.mark.postgres
    def test_a_nul_byte_in_a_row_is_a_row_error_on_postgresql(self, tmp_path, pg_url):
        """A NUL byte inside a data row is refused as a row error, not as an internal error."""
        from backend.load.loader import load_file

        settings = make_settings(tmp_path, pg_url)
        db = open_db(settings)
        try:
            path = tmp_path / "nul.csv"
            path.write_bytes(b"\xef\xbb\xbf,,,\n,,,\x00\n")
            with pytest.raises(IngestError) as caught:
                load_file(db, settings, LoadRequest(path=path))
            assert caught.value.stage != "bug", caught.value
        finally:
            db.dispose()
