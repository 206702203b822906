"""Lifecycle: folder tree, classification, moves without overwrite, sidecars, retry and retention."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.daemon import folders as lifecycle
from backend.daemon import moves
from backend.daemon.folders import (
    classify,
    ensure_directories,
    error_files,
    move_back_for_retry,
    move_to_error,
    move_to_processed,
    original_name,
    purge_processed,
    read_sidecar,
    sidecar_path,
)
from backend.errors import ConfigError
from backend.models import LoadType

# 2024-01-31 12:34:56 UTC
NOW = 1706704496.0
STAMP = "20240131_123456"


class RecordingLog:
    """Stands in for the module's structlog logger so tests can see what it logged."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str) -> Any:
        return lambda event, **kw: self.events.append((level, event, kw))

    def __getattr__(self, level: str) -> Any:
        return self._record(level)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "dropoff"
    ensure_directories(root)
    return root


@pytest.fixture
def folder(base: Path) -> Path:
    return base / "reference_data_table" / "fullload"


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingLog]:
    recorder = RecordingLog()
    monkeypatch.setattr(lifecycle, "log", recorder)
    yield recorder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def drop(folder: Path, name: str, content: bytes = b"code,name\nNA,Namibia\n") -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


class TestEnsureDirectories:
    def test_creates_the_whole_tree(self, tmp_path: Path) -> None:
        """Base, both kinds, both load types, and processed/ + error/ in each are created."""
        root = tmp_path / "a" / "dropoff"
        created = ensure_directories(root)
        expected = {tmp_path / "a", root}
        for kind in ("reference_data_table", "none_reference_data_table"):
            expected.add(root / kind)
            for load in ("fullload", "append"):
                expected |= {
                    root / kind / load,
                    root / kind / load / "processed",
                    root / kind / load / "error",
                }
        assert set(created) == expected
        assert all(p.is_dir() for p in expected)

    def test_second_run_creates_nothing(self, base: Path) -> None:
        """Running it again is a no-op that reports nothing created."""
        assert ensure_directories(base) == []

    def test_recreates_a_missing_subfolder(self, base: Path) -> None:
        """A deleted error/ folder is recreated and reported."""
        missing = base / "none_reference_data_table" / "append" / "error"
        missing.rmdir()
        assert ensure_directories(base) == [missing]

    def test_created_folders_are_never_world_writable(self, tmp_path: Path) -> None:
        """Folders are created 0o750 at most, whatever the umask allows."""
        old = os.umask(0)
        try:
            created = ensure_directories(tmp_path / "dropoff")
        finally:
            os.umask(old)
        for path in created:
            assert stat.S_IMODE(path.stat().st_mode) == 0o750, path

    def test_world_writable_existing_folder_is_warned_about(self, base: Path, logs: RecordingLog) -> None:
        """An existing world-writable drop folder is left alone but logged as a warning."""
        target = base / "reference_data_table" / "append"
        target.chmod(0o777)
        ensure_directories(base)
        warnings = [kw for level, _event, kw in logs.events if level == "warning"]
        assert [w["path"] for w in warnings] == [str(target)]
        assert warnings[0]["mode"] == "0o777"

    def test_file_in_the_way_is_a_config_error(self, tmp_path: Path) -> None:
        """A file where a folder should be stops start-up with ConfigError."""
        root = tmp_path / "dropoff"
        root.mkdir()
        (root / "reference_data_table").write_text("oops")
        with pytest.raises(ConfigError, match="not a folder"):
            ensure_directories(root)


class TestClassify:
    @pytest.mark.parametrize(
        ("kind", "load", "expected"),
        [
            ("reference_data_table", "fullload", (True, LoadType.FULLLOAD)),
            ("reference_data_table", "append", (True, LoadType.APPEND)),
            ("none_reference_data_table", "fullload", (False, LoadType.FULLLOAD)),
            ("none_reference_data_table", "append", (False, LoadType.APPEND)),
        ],
    )
    def test_folder_decides_kind_and_load_type(self, base: Path, kind: str, load: str, expected: Any) -> None:
        """Each of the four drop folders maps to its (is_reference, load_type)."""
        assert classify(base / kind / load / "x.csv", base) == expected

    @pytest.mark.parametrize(
        "relative",
        [
            "x.csv",
            "reference_data_table/x.csv",
            "reference_data_table/fullload/processed/x.csv",
            "reference_data_table/fullload/error/x.csv",
            "other/fullload/x.csv",
        ],
    )
    def test_files_outside_drop_folders_are_none(self, base: Path, relative: str) -> None:
        """Files not directly inside a drop folder are not classified."""
        assert classify(base / relative, base) is None

    def test_relative_and_absolute_paths_agree(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A relative base and an absolute file path name the same folder."""
        monkeypatch.chdir(base.parent)
        path = base / "none_reference_data_table" / "append" / "x.csv"
        assert classify(path, Path("dropoff")) == (False, LoadType.APPEND)


class TestMoveToProcessed:
    def test_moves_with_a_utc_timestamp_prefix(self, folder: Path) -> None:
        """The file lands in processed/ as <YYYYMMDD_HHMMSS>_<name> and leaves the drop folder."""
        src = drop(folder, "countries.csv")
        dest = move_to_processed(src, folder, NOW)
        assert dest == folder / "processed" / f"{STAMP}_countries.csv"
        assert dest.is_file()
        assert not src.exists()

    def test_bytes_are_identical(self, folder: Path) -> None:
        """The moved file has the same SHA-256 as the dropped one."""
        content = os.urandom(300_000)
        src = drop(folder, "big.csv", content)
        before = sha256(src)
        assert sha256(move_to_processed(src, folder, NOW)) == before

    @pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
    def test_permissions_are_preserved(self, folder: Path, mode: int) -> None:
        """The moved file keeps its mode: never readable by more users than before."""
        src = drop(folder, "a.csv")
        src.chmod(mode)
        assert stat.S_IMODE(move_to_processed(src, folder, NOW).stat().st_mode) == mode

    def test_never_overwrites_an_existing_file(self, folder: Path) -> None:
        """A clash in the same second gets a -1, -2 counter; earlier files keep their bytes."""
        first = move_to_processed(drop(folder, "a.csv", b"one\n"), folder, NOW)
        second = move_to_processed(drop(folder, "a.csv", b"two\n"), folder, NOW)
        third = move_to_processed(drop(folder, "a.csv", b"three\n"), folder, NOW)
        assert [first.name, second.name, third.name] == [
            f"{STAMP}_a.csv",
            f"{STAMP}-1_a.csv",
            f"{STAMP}-2_a.csv",
        ]
        assert [first.read_bytes(), second.read_bytes(), third.read_bytes()] == [
            b"one\n",
            b"two\n",
            b"three\n",
        ]

    def test_readiness_markers_move_along(self, folder: Path) -> None:
        """Both marker spellings travel with the file under the same prefix."""
        src = drop(folder, "a.csv")
        (folder / "a.csv.done").write_text("")
        (folder / "a.ok").write_text("")
        (folder / "b.csv.done").write_text("")
        move_to_processed(src, folder, NOW)
        assert sorted(p.name for p in (folder / "processed").iterdir()) == [
            f"{STAMP}_a.csv",
            f"{STAMP}_a.csv.done",
            f"{STAMP}_a.ok",
        ]
        assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["b.csv.done"]

    def test_marker_follows_the_counter_of_its_file(self, folder: Path) -> None:
        """When the file needs a counter, its marker gets the same one."""
        move_to_processed(drop(folder, "a.csv"), folder, NOW)
        src = drop(folder, "a.csv")
        (folder / "a.csv.done").write_text("")
        dest = move_to_processed(src, folder, NOW)
        assert dest.name == f"{STAMP}-1_a.csv"
        assert (folder / "processed" / f"{STAMP}-1_a.csv.done").is_file()

    @pytest.mark.parametrize(
        "name",
        [
            "with spaces in it.csv",
            "ünïcödé_日本語.csv",
            'it\'s "quoted".csv',
            "-leading-dash.csv",
            "--help.csv",
            "semi;colon & ampersand $HOME.csv",
            "x" * 200 + ".csv",
        ],
    )
    def test_awkward_names_move_intact(self, folder: Path, name: str) -> None:
        """Spaces, unicode, quotes, leading dashes and shell characters survive a move."""
        src = drop(folder, name)
        dest = move_to_processed(src, folder, NOW)
        assert dest.name == f"{STAMP}_{name}"
        assert original_name(dest.name) == name

    def test_long_name_is_shortened_to_fit_name_max(self, folder: Path) -> None:
        """A name that would pass 255 bytes with the prefix is shortened and keeps its extension."""
        name = "r" * 250 + ".csv"
        dest = move_to_processed(drop(folder, name), folder, NOW)
        assert len(os.fsencode(dest.name)) <= 255
        assert dest.name.startswith(f"{STAMP}_rrrr")
        assert dest.name.endswith(".csv")

    def test_long_multibyte_name_is_cut_on_a_character_boundary(self, folder: Path) -> None:
        """Shortening never splits a UTF-8 character."""
        name = "é" * 124 + ".csv"  # 252 bytes
        dest = move_to_processed(drop(folder, name), folder, NOW)
        encoded = os.fsencode(dest.name)
        assert len(encoded) <= 255
        encoded.decode("utf-8")  # raises if a character was split
        assert dest.name.endswith(".csv")

    def test_two_long_names_sharing_a_beginning_stay_apart(self, folder: Path) -> None:
        """Shortened names carry a hash of the full name, so they do not collide."""
        a = move_to_processed(drop(folder, "s" * 248 + "_a.csv"), folder, NOW)
        b = move_to_processed(drop(folder, "s" * 248 + "_b.csv"), folder, NOW)
        assert a.name != b.name
        assert not b.name.startswith(f"{STAMP}-1_")


class TestWithoutRenameNoreplace:
    def test_hard_link_fallback_never_overwrites(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without renameat2 (other libc, macOS) the link-then-unlink path keeps the same guarantees."""
        monkeypatch.setattr(moves, "_renameat2", lambda: None)
        first = move_to_processed(drop(folder, "a.csv", b"one\n"), folder, NOW)
        second = move_to_processed(drop(folder, "a.csv", b"two\n"), folder, NOW)
        assert (first.read_bytes(), second.read_bytes()) == (b"one\n", b"two\n")
        assert second.name == f"{STAMP}-1_a.csv"
        assert first.stat().st_nlink == 1
        assert not (folder / "a.csv").exists()


class TestCrossVolume:
    def test_move_across_filesystems_copies_then_renames(self, folder: Path) -> None:
        """From another filesystem (EXDEV) the bytes, mode and mtime arrive and the source is removed."""
        shm = Path("/dev/shm")
        if not shm.is_dir() or shm.stat().st_dev == folder.stat().st_dev:
            pytest.skip("needs /dev/shm on a different filesystem than tmp_path")
        src = shm / f"refdata-test-{os.getpid()}-{time.monotonic_ns()}.csv"
        try:
            src.write_bytes(os.urandom(100_000))
            src.chmod(0o640)
            os.utime(src, (1_700_000_000, 1_700_000_000))
            digest = sha256(src)
            dest = move_to_processed(src, folder, NOW)
        finally:
            src.unlink(missing_ok=True)
        assert sha256(dest) == digest
        assert stat.S_IMODE(dest.stat().st_mode) == 0o640
        assert dest.stat().st_mtime == 1_700_000_000
        assert not src.exists()
        assert [p.name for p in (folder / "processed").iterdir()] == [dest.name]  # no temp file left


class TestMoveToError:
    def test_moves_and_writes_the_sidecar(self, folder: Path) -> None:
        """The file lands in error/ with <name>.error.json holding the reason plus file and moved_at."""
        src = drop(folder, "bad.csv")
        details = {
            "reason": "row 7 has 3 fields, the header has 2",
            "stage": "stage",
            "exception_type": "RowError",
            "detection": {"encoding": "utf-8", "delimiter": ","},
            "rows": [7],
            "tracking_id": 42,
        }
        dest = move_to_error(src, folder, NOW, details)
        assert dest == folder / "error" / f"{STAMP}_bad.csv"
        body = json.loads(sidecar_path(dest).read_text(encoding="utf-8"))
        assert body == {**details, "file": str(src), "moved_at": "2024-01-31T12:34:56Z"}
        assert read_sidecar(dest) == body

    def test_sidecar_is_no_more_readable_than_the_file(self, folder: Path) -> None:
        """A 0o600 file gets a 0o600 sidecar (it may quote row values)."""
        src = drop(folder, "bad.csv")
        src.chmod(0o600)
        dest = move_to_error(src, folder, NOW, {"reason": "x"})
        assert stat.S_IMODE(sidecar_path(dest).stat().st_mode) == 0o600

    def test_sidecar_keeps_non_ascii_text(self, folder: Path) -> None:
        """Reasons with non-ASCII characters are stored as readable UTF-8."""
        dest = move_to_error(drop(folder, "Côte.csv"), folder, NOW, {"reason": "en-tête vide « Nom »"})
        raw = sidecar_path(dest).read_text(encoding="utf-8")
        assert "en-tête vide « Nom »" in raw
        assert "Côte.csv" in raw

    def test_no_temporary_files_are_left_behind(self, folder: Path) -> None:
        """Only the file and its sidecar sit in error/ afterwards."""
        dest = move_to_error(drop(folder, "bad.csv"), folder, NOW, {"reason": "x"})
        assert sorted(p.name for p in (folder / "error").iterdir()) == [dest.name, dest.name + ".error.json"]

    def test_clash_with_an_orphaned_sidecar_takes_the_next_name(self, folder: Path) -> None:
        """A leftover sidecar is never attached to a different file."""
        (folder / "error" / f"{STAMP}_bad.csv.error.json").write_text("{}")
        dest = move_to_error(drop(folder, "bad.csv"), folder, NOW, {"reason": "x"})
        assert dest.name == f"{STAMP}-1_bad.csv"

    def test_long_name_leaves_room_for_the_sidecar_suffix(self, folder: Path) -> None:
        """Both the file and <file>.error.json fit in 255 bytes."""
        dest = move_to_error(drop(folder, "e" * 240 + ".csv"), folder, NOW, {"reason": "x"})
        assert len(os.fsencode(sidecar_path(dest).name)) <= 255
        assert sidecar_path(dest).is_file()

    def test_unserialisable_values_are_written_as_text(self, folder: Path) -> None:
        """Paths and other objects in the sidecar are stored with str()."""
        dest = move_to_error(drop(folder, "bad.csv"), folder, NOW, {"reason": "x", "where": Path("/a/b")})
        assert read_sidecar(dest)["where"] == "/a/b"  # type: ignore[index]


class TestRetry:
    def test_puts_the_file_back_under_its_original_name(self, folder: Path) -> None:
        """The prefix is stripped, the sidecar removed, the bytes unchanged."""
        src = drop(folder, "bad.csv", b"a,b\n1,2\n")
        dest = move_to_error(src, folder, NOW, {"reason": "x"})
        back = move_back_for_retry(dest)
        assert back == folder / "bad.csv"
        assert back.read_bytes() == b"a,b\n1,2\n"
        assert list((folder / "error").iterdir()) == []

    def test_markers_come_back_too(self, folder: Path) -> None:
        """A marker that travelled to error/ returns with its file."""
        src = drop(folder, "bad.csv")
        (folder / "bad.csv.done").write_text("")
        move_back_for_retry(move_to_error(src, folder, NOW, {"reason": "x"}))
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
        assert names == [".bad.csv.error.json", "bad.csv", "bad.csv.done"]  # the sidecar travels, hidden

    def test_the_sidecar_travels_with_its_file(self, folder: Path) -> None:
        """A retried file's sidecar waits hidden beside it, then joins the next sidecar or processed/."""
        src = drop(folder, "bad.csv")
        back = move_back_for_retry(move_to_error(src, folder, NOW, {"reason": "first"}))
        assert not list((folder / "error").iterdir())  # neither the file nor its sidecar stays behind
        again = move_to_error(back, folder, NOW + 1, {"reason": "second"})
        sidecar = read_sidecar(again)
        assert (
            sidecar is not None and sidecar["reason"] == "second" and sidecar["previous"]["reason"] == "first"
        )
        assert not (folder / ".bad.csv.error.json").exists()
        loaded = move_to_processed(move_back_for_retry(again), folder, NOW + 2)
        previous = loaded.with_name(loaded.name + ".previous.error.json")
        assert json.loads(previous.read_text())["reason"] == "second"
        assert [p.name for p in folder.iterdir() if p.is_file()] == []

    def test_shortened_name_is_restored_from_the_sidecar(self, folder: Path) -> None:
        """A name shortened to fit the prefix comes back whole, since the table name derives from it."""
        name = "L" * 245 + ".csv"
        dest = move_to_error(drop(folder, name), folder, NOW, {"reason": "x"})
        assert original_name(dest.name) != name
        assert move_back_for_retry(dest) == folder / name

    def test_counter_prefix_is_stripped(self, folder: Path) -> None:
        """A file that needed a clash counter also returns under its plain name."""
        move_to_error(drop(folder, "bad.csv"), folder, NOW, {"reason": "x"})
        second = move_to_error(drop(folder, "bad.csv"), folder, NOW, {"reason": "y"})
        assert move_back_for_retry(second) == folder / "bad.csv"

    def test_refuses_to_overwrite_a_waiting_file(self, folder: Path) -> None:
        """If a file of that name waits in the drop folder, nothing moves."""
        dest = move_to_error(drop(folder, "bad.csv", b"old\n"), folder, NOW, {"reason": "x"})
        drop(folder, "bad.csv", b"new\n")
        with pytest.raises(FileExistsError, match="already waiting"):
            move_back_for_retry(dest)
        assert (folder / "bad.csv").read_bytes() == b"new\n"
        assert dest.read_bytes() == b"old\n"
        assert sidecar_path(dest).is_file()

    def test_tampered_sidecar_cannot_send_the_file_elsewhere(self, base: Path, folder: Path) -> None:
        """Only the base name of the sidecar's "file" is used, so the file stays in its drop folder."""
        dest = move_to_error(drop(folder, "bad.csv"), folder, NOW, {"reason": "x"})
        sidecar_path(dest).write_text(json.dumps({"file": "../../../outside.csv"}), encoding="utf-8")
        assert move_back_for_retry(dest) == folder / "outside.csv"
        dest = move_to_error(drop(folder, "two.csv"), folder, NOW, {"reason": "x"})
        sidecar_path(dest).write_text(json.dumps({"file": ".."}), encoding="utf-8")
        assert move_back_for_retry(dest) == folder / "two.csv"

    def test_refuses_files_outside_error(self, folder: Path) -> None:
        """Only files in an error/ folder can be retried."""
        with pytest.raises(ValueError, match="error/"):
            move_back_for_retry(drop(folder, "a.csv"))

    def test_error_files_lists_data_files_only(self, base: Path, folder: Path) -> None:
        """Sidecars are not listed as files to retry."""
        one = move_to_error(drop(folder, "a.csv"), folder, NOW, {"reason": "x"})
        other = base / "none_reference_data_table" / "append"
        two = move_to_error(drop(other, "b.csv"), other, NOW, {"reason": "y"})
        assert error_files(base) == sorted([one, two])


class TestPurge:
    def test_deletes_only_old_prefixed_files(self, base: Path, folder: Path) -> None:
        """Files moved more than N days ago go; newer and unprefixed files stay."""
        day = 86400
        old = move_to_processed(drop(folder, "old.csv"), folder, NOW - 31 * day)
        new = move_to_processed(drop(folder, "new.csv"), folder, NOW - 29 * day)
        foreign = folder / "processed" / "not_ours.csv"
        foreign.write_text("x")
        os.utime(foreign, (0, 0))
        assert purge_processed(base, 30, NOW) == 1
        assert not old.exists()
        assert new.exists()
        assert foreign.exists()

    def test_zero_days_keeps_everything(self, base: Path, folder: Path) -> None:
        """Retention 0 means never delete."""
        kept = move_to_processed(drop(folder, "a.csv"), folder, 0.0)
        assert purge_processed(base, 0, NOW) == 0
        assert kept.exists()

    def test_error_folder_is_not_purged(self, base: Path, folder: Path) -> None:
        """Rejected files wait for an operator, however old."""
        kept = move_to_error(drop(folder, "a.csv"), folder, 0.0, {"reason": "x"})
        assert purge_processed(base, 1, NOW) == 0
        assert kept.exists()


class TestOriginalName:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            (f"{STAMP}_a.csv", "a.csv"),
            (f"{STAMP}-12_a.csv", "a.csv"),
            (f"{STAMP}_1_a.csv", "1_a.csv"),
            ("20240131_a.csv", "20240131_a.csv"),
            ("plain.csv", "plain.csv"),
        ],
    )
    def test_strips_only_our_prefix(self, name: str, expected: str) -> None:
        """Only <YYYYMMDD_HHMMSS>[-n]_ is removed; names that merely start with digits are kept."""
        assert original_name(name) == expected


class TestPlaceRejects:
    def test_rejects_go_to_error_named_after_the_moved_file_and_are_not_retried(self, tmp_path: Path):
        """The rejects file lands in error/ as <moved name>.rejects.csv; error_files() leaves it out."""
        base = tmp_path / "dropoff"
        folder = base / "none_reference_data_table" / "append"
        (folder / "error").mkdir(parents=True)
        rejects = tmp_path / "data" / "rejects" / "7_codes.csv.rejects.csv"
        rejects.parent.mkdir(parents=True)
        rejects.write_text("line,fields\n3,a,b,c\n")
        moved = folder / "processed" / "20240131_101500_codes.csv"
        dest = lifecycle.place_rejects(rejects, moved, folder, 7)
        assert dest == folder / "error" / "20240131_101500_codes.csv.rejects.csv"
        assert dest.read_text() == "line,fields\n3,a,b,c\n" and not rejects.exists()
        assert lifecycle.error_files(base) == []
        assert not lifecycle.is_moved_name(dest.name, "codes.csv")

    def test_a_name_too_long_for_the_suffix_falls_back_to_the_load_id(self, tmp_path: Path):
        """A moved name with no room for .rejects.csv gives <timestamp>_<tracking id>.rejects.csv."""
        folder = tmp_path / "append"
        rejects = tmp_path / "r.csv"
        rejects.write_text("line,fields\n")
        moved = folder / "error" / ("20240131_101500_" + "x" * 235 + ".csv")
        dest = lifecycle.place_rejects(rejects, moved, folder, 42)
        assert dest.name == "20240131_101500_42.rejects.csv" and dest.exists()
