"""Discovery: the rescan's filters and the watchdog-based hints, on real files and real observers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.config import Settings
from backend.daemon import watcher as watcher_module
from backend.daemon.folders import ensure_directories
from backend.daemon.watcher import Watcher, ignore_reason, scan

ROOT = Path(__file__).resolve().parents[2]
EXTENSIONS = (".csv", ".txt", ".tsv", ".psv")


class RecordingLog:
    """Stands in for the module's structlog logger so tests can see what it logged."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.events.append((level, event, kw))

    def paths(self, level: str = "warning") -> list[str]:
        return [kw["path"] for lvl, _e, kw in self.events if lvl == level and "path" in kw]


def make_settings(base: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, dropoff_base_path=base, **overrides)  # type: ignore[call-arg]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "dropoff"
    ensure_directories(root)
    return root


@pytest.fixture
def folder(base: Path) -> Path:
    return base / "reference_data_table" / "fullload"


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> RecordingLog:
    recorder = RecordingLog()
    monkeypatch.setattr(watcher_module, "log", recorder)
    return recorder


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    """Every watcher a test creates is stopped afterwards, even when the test fails."""
    created: list[Watcher] = []
    yield created
    for w in created:
        w.stop()


def start_watcher(watchers: list[Watcher], base: Path, **kwargs: Any) -> Watcher:
    settings_overrides = {k: kwargs.pop(k) for k in ("force_polling", "monitor_interval") if k in kwargs}
    w = Watcher(base, make_settings(base, **settings_overrides), **kwargs)
    watchers.append(w)
    w.start()
    return w


def hints_until(w: Watcher, expected: Path, timeout: float = 5.0) -> set[Path]:
    """Collect hints until `expected` shows up or the timeout passes."""
    seen: set[Path] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and expected not in seen:
        w.wait(0.05)
        seen |= w.drain_hints()
    return seen


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


class TestIgnoreReason:
    @pytest.mark.parametrize(
        ("name", "reason"),
        [
            ("a.csv", None),
            ("A.CSV", None),
            ("b.Tsv", None),
            (".hidden.csv", "hidden"),
            (".~lock.a.csv#", "hidden"),
            ("~$budget.csv", "hidden"),
            ("a.csv.tmp", "partial"),
            ("a.csv.part", "partial"),
            ("a.csv.crdownload", "partial"),
            ("a.csv.filepart", "partial"),
            ("a.csv.done", "marker"),
            ("a.OK", "marker"),
            ("a.csv.cancel", "marker"),
            ("a.docx", "extension"),
            ("csv", "extension"),
        ],
    )
    def test_classifies_names(self, name: str, reason: str | None) -> None:
        """Hidden, partial, marker and unaccepted names are told apart, case-insensitively."""
        assert ignore_reason(name, EXTENSIONS) == reason


class TestScan:
    def test_returns_only_candidates(self, base: Path, folder: Path) -> None:
        """Accepted extensions in any case are listed; hidden, partial, marker and other files are not."""
        keep = ["a.csv", "B.CSV", "c.txt", "d.tsv", "e.psv"]
        skip = [
            ".hidden.csv",
            "~$lock.csv",
            ".~lock.a.csv#",
            "x.csv.tmp",
            "y.part",
            "z.crdownload",
            "a.csv.done",
            "a.ok",
            "q.cancel",
            "slides.pptx",
            "README",
        ]
        for name in keep + skip:
            (folder / name).write_text("x\n")
        assert scan(base, make_settings(base)) == sorted(folder / n for n in keep)

    def test_lists_all_four_drop_folders(self, base: Path) -> None:
        """A file in each of the four folders is found."""
        expected = []
        for kind in ("reference_data_table", "none_reference_data_table"):
            for load in ("fullload", "append"):
                path = base / kind / load / f"{kind}_{load}.csv"
                path.write_text("x\n")
                expected.append(path)
        assert scan(base, make_settings(base)) == sorted(expected)

    def test_does_not_look_inside_processed_or_error(
        self, base: Path, folder: Path, logs: RecordingLog
    ) -> None:
        """Files, links and FIFOs in processed/ and error/ are neither listed nor logged."""
        for sub in ("processed", "error"):
            (folder / sub / "old.csv").write_text("x\n")
            (folder / sub / "link.csv").symlink_to(folder / sub / "old.csv")
            os.mkfifo(folder / sub / "pipe.csv")
        assert scan(base, make_settings(base)) == []
        assert logs.events == []

    def test_custom_extensions_are_honoured(self, base: Path, folder: Path) -> None:
        """ACCEPTED_EXTENSIONS decides what counts (here only .dat, in any case)."""
        for name in ("a.csv", "b.dat", "C.DAT"):
            (folder / name).write_text("x\n")
        settings = make_settings(base, accepted_extensions="dat")
        assert scan(base, settings) == [folder / "C.DAT", folder / "b.dat"]

    @pytest.mark.parametrize(
        "name",
        [
            "with spaces.csv",
            "ünïcödé_日本語.csv",
            'it\'s "quoted".csv',
            "-leading-dash.csv",
            "--rm -rf.csv",
            "n" * 240 + ".csv",
        ],
    )
    def test_awkward_names_are_found_intact(self, base: Path, folder: Path, name: str) -> None:
        """Spaces, unicode, quotes, leading dashes and long names are listed exactly."""
        (folder / name).write_text("x\n")
        assert scan(base, make_settings(base)) == [folder / name]

    def test_symlink_is_ignored_and_logged_once(self, base: Path, folder: Path, logs: RecordingLog) -> None:
        """A symlink is never followed; with a shared `warned` set it is logged on the first scan only."""
        target = base.parent / "secret.csv"
        target.write_text("password\n")
        link = folder / "innocent.csv"
        link.symlink_to(target)
        warned: set[Path] = set()
        settings = make_settings(base)
        assert scan(base, settings, warned=warned) == []
        assert scan(base, settings, warned=warned) == []
        assert logs.paths() == [str(link)]

    def test_symlink_to_a_folder_is_not_entered(self, base: Path, folder: Path) -> None:
        """A linked folder full of CSV files contributes nothing."""
        outside = base.parent / "outside"
        outside.mkdir()
        (outside / "x.csv").write_text("x\n")
        (folder / "linked").symlink_to(outside, target_is_directory=True)
        assert scan(base, make_settings(base)) == []

    def test_fifo_is_ignored_without_blocking(self, base: Path, folder: Path, logs: RecordingLog) -> None:
        """A FIFO with an accepted name is skipped (and logged) without being opened."""
        fifo = folder / "pipe.csv"
        os.mkfifo(fifo)
        (folder / "real.csv").write_text("x\n")
        assert scan(base, make_settings(base)) == [folder / "real.csv"]
        assert logs.paths() == [str(fifo)]

    def test_subfolder_is_ignored_and_logged(self, base: Path, folder: Path, logs: RecordingLog) -> None:
        """A folder inside a drop folder (other than processed/error) is not descended into."""
        sub = folder / "batch.csv"
        sub.mkdir()
        (sub / "inner.csv").write_text("x\n")
        assert scan(base, make_settings(base)) == []
        assert logs.paths() == [str(sub)]

    def test_log_repeats_after_the_path_went_away_and_came_back(
        self, base: Path, folder: Path, logs: RecordingLog
    ) -> None:
        """The warned set forgets paths that disappeared, so it never grows without bound."""
        warned: set[Path] = set()
        settings = make_settings(base)
        (folder / "a.docx").write_text("x")
        scan(base, settings, warned=warned)
        (folder / "a.docx").unlink()
        scan(base, settings, warned=warned)
        assert warned == set()
        (folder / "a.docx").write_text("x")
        scan(base, settings, warned=warned)
        assert logs.paths() == [str(folder / "a.docx")] * 2

    def test_missing_drop_folder_is_reported_not_raised(self, base: Path, logs: RecordingLog) -> None:
        """A deleted drop folder is logged; the other folders are still scanned."""
        shutil.rmtree(base / "none_reference_data_table" / "append")
        (base / "reference_data_table" / "append" / "a.csv").write_text("x\n")
        assert scan(base, make_settings(base)) == [base / "reference_data_table" / "append" / "a.csv"]
        assert logs.paths() == [str(base / "none_reference_data_table" / "append")]

    def test_missing_base_raises(self, tmp_path: Path) -> None:
        """An absent dropoff root (unmounted share) is an error, not an empty listing."""
        with pytest.raises(FileNotFoundError):
            scan(tmp_path / "unmounted", make_settings(tmp_path / "unmounted"))


class TestWatcherNative:
    def test_new_file_arrives_as_a_hint(self, base: Path, folder: Path, watchers: list[Watcher]) -> None:
        """Creating a file wakes wait() and puts its path in drain_hints() within seconds."""
        w = start_watcher(watchers, base)
        assert w.mode == "native"
        assert w.alive
        target = folder / "countries.csv"
        target.write_text("a,b\n")
        assert target in hints_until(w, target)

    def test_many_writes_give_one_hint_and_no_folder_hints(
        self, base: Path, folder: Path, watchers: list[Watcher]
    ) -> None:
        """Fifty writes to one file give that one path; the folder's own events are not hinted."""
        w = start_watcher(watchers, base)
        target = folder / "a.csv"
        with target.open("w") as f:
            for i in range(50):
                f.write(f"{i}\n")
                f.flush()
        seen = hints_until(w, target)
        time.sleep(0.3)
        seen |= w.drain_hints()
        assert seen == {target}

    def test_rename_from_a_partial_name_hints_the_final_name(
        self, base: Path, folder: Path, watchers: list[Watcher]
    ) -> None:
        """Uploads to x.part are not hinted; the rename to x.csv is."""
        w = start_watcher(watchers, base)
        partial = folder / "upload.csv.part"
        partial.write_text("a\n")
        time.sleep(0.3)
        assert w.drain_hints() == set()
        final = folder / "upload.csv"
        partial.rename(final)
        assert final in hints_until(w, final)

    def test_marker_hints_the_file_it_names(self, base: Path, folder: Path, watchers: list[Watcher]) -> None:
        """Writing x.csv.done hints x.csv, so a marked file is picked up at once."""
        (folder / "x.csv").write_text("a\n")
        w = start_watcher(watchers, base)
        (folder / "x.csv.done").write_text("")
        assert folder / "x.csv" in hints_until(w, folder / "x.csv")

    def test_on_event_callback_is_called(self, base: Path, folder: Path, watchers: list[Watcher]) -> None:
        """The on_event callback runs for a new hint (the main loop's wake-up)."""
        calls: list[int] = []
        start_watcher(watchers, base, on_event=lambda: calls.append(1))
        (folder / "a.csv").write_text("a\n")
        assert wait_until(lambda: calls)

    def test_deleted_drop_folder_makes_it_not_alive_and_restart_recovers(
        self, base: Path, folder: Path, watchers: list[Watcher]
    ) -> None:
        """When a watched folder disappears `alive` turns false; after recreating it, restart() works."""
        w = start_watcher(watchers, base)
        shutil.rmtree(base / "none_reference_data_table" / "append")
        assert wait_until(lambda: not w.alive)
        ensure_directories(base)
        w.restart()
        assert w.alive
        (folder / "after.csv").write_text("a\n")
        assert folder / "after.csv" in hints_until(w, folder / "after.csv")

    def test_overflow_of_hints_makes_it_not_alive(
        self, base: Path, folder: Path, watchers: list[Watcher]
    ) -> None:
        """More hints than max_hints between drains means "rescan": alive turns false, hints are dropped."""
        w = start_watcher(watchers, base, max_hints=3)
        for i in range(6):
            (folder / f"f{i}.csv").write_text("a\n")
        assert wait_until(lambda: not w.alive)
        assert w.drain_hints() == set()
        w.restart()
        assert w.alive

    def test_stop_ends_the_observer_and_is_idempotent(self, base: Path, watchers: list[Watcher]) -> None:
        """After stop() the watcher is not alive, its mode is "stopped", and stopping again is harmless."""
        w = start_watcher(watchers, base)
        w.stop()
        w.stop()
        assert not w.alive
        assert w.mode == "stopped"

    def test_starting_twice_is_refused(self, base: Path, watchers: list[Watcher]) -> None:
        """A second start() without stop() raises instead of leaking an observer."""
        w = start_watcher(watchers, base)
        with pytest.raises(RuntimeError, match="already started"):
            w.start()

    def test_scan_method_logs_each_skipped_path_once(
        self, base: Path, folder: Path, logs: RecordingLog
    ) -> None:
        """Watcher.scan() keeps its own warned set across calls."""
        (folder / "link.csv").symlink_to(folder / "nowhere.csv")
        w = Watcher(base, make_settings(base))
        w.scan()
        w.scan()
        assert logs.paths() == [str(folder / "link.csv")]


class TestWatcherPolling:
    def test_polling_mode_delivers_hints(self, base: Path, folder: Path, watchers: list[Watcher]) -> None:
        """With force_polling the PollingObserver finds new files at its interval."""
        w = start_watcher(watchers, base, force_polling=True, monitor_interval=0.1)
        assert w.mode == "polling"
        assert w.alive
        target = folder / "polled.csv"
        target.write_text("a\n")
        assert target in hints_until(w, target)

    def test_deleted_folder_stops_polling_and_shows_as_not_alive(
        self, base: Path, watchers: list[Watcher]
    ) -> None:
        """A polled folder that disappears ends its emitter, so `alive` turns false."""
        w = start_watcher(watchers, base, force_polling=True, monitor_interval=0.05)
        shutil.rmtree(base / "reference_data_table" / "append")
        assert wait_until(lambda: not w.alive)

    def test_exhausted_inotify_falls_back_to_polling(self, tmp_path: Path) -> None:
        """When the descriptors run out at start (EMFILE) the watcher warns and polls instead."""
        script = textwrap.dedent(
            """
            import errno, os, resource, sys
            from pathlib import Path
            import watchdog.observers.inotify, watchdog.observers.polling  # load before fds run out
            from backend.config import Settings
            from backend.daemon.folders import ensure_directories
            from backend.daemon.watcher import Watcher

            base = Path(sys.argv[1])
            ensure_directories(base)
            w = Watcher(base, Settings(_env_file=None, dropoff_base_path=base, monitor_interval=0.1))
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
            held = []
            try:
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
            for fd in held[-2:]:  # room for inotify_init, not for its pipe; enough for a listing
                os.close(fd)
            del held[-2:]
            w.start()
            for fd in held:
                os.close(fd)
            target = base / "reference_data_table" / "fullload" / "x.csv"
            target.write_text("a")
            woken = w.wait(5)
            print("RESULT", w.mode, w.alive, woken, target in w.drain_hints())
            w.stop()
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "dropoff")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "RESULT polling True True True" in result.stdout
        assert "falling back to polling" in result.stdout + result.stderr
