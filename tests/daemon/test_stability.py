"""Stability: N unchanged checks, minimum age, markers and the exclusive-open probe, with a fake clock."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from backend.daemon.stability import ReadyFile, StabilityTracker, marker_candidates, probe_exclusive

DROP = Path("/drop/reference_data_table/fullload")


class FakeFiles:
    """A stat function over an in-memory listing: path -> (size, mtime, mode)."""

    def __init__(self) -> None:
        self.files: dict[Path, tuple[int, float, int]] = {}

    def put(self, path: Path, size: int, mtime: float, mode: int = stat.S_IFREG | 0o644) -> None:
        self.files[path] = (size, mtime, mode)

    def remove(self, path: Path) -> None:
        del self.files[path]

    def stat(self, path: Path) -> os.stat_result:
        try:
            size, mtime, mode = self.files[Path(path)]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path)) from None
        return os.stat_result((mode, 0, 0, 1, 0, 0, size, mtime, mtime, mtime))


@pytest.fixture
def fs() -> FakeFiles:
    return FakeFiles()


def run_checks(
    tracker: StabilityTracker, fs: FakeFiles, paths: list[Path], times: list[float]
) -> list[list[Path]]:
    return [[r.path for r in tracker.check(paths, now=t, stat=fs.stat)] for t in times]


class TestChecks:
    def test_ready_exactly_on_the_nth_unchanged_check(self, fs: FakeFiles) -> None:
        """With checks=3 a file seen at t=0 is ready at the third unchanged check after it, not before."""
        f = DROP / "a.csv"
        fs.put(f, 100, mtime=-50.0)
        tracker = StabilityTracker(3)
        assert run_checks(tracker, fs, [f], [0, 15, 30, 45]) == [[], [], [], [f]]

    def test_checks_one_means_one_unchanged_recheck(self, fs: FakeFiles) -> None:
        """checks=1 still needs a second look: the first sighting alone never proves stability."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=0.0)
        tracker = StabilityTracker(1)
        assert run_checks(tracker, fs, [f], [10, 20]) == [[], [f]]

    def test_size_change_resets_the_count(self, fs: FakeFiles) -> None:
        """A file that grows between checks starts counting again from zero."""
        f = DROP / "a.csv"
        tracker = StabilityTracker(2)
        fs.put(f, 10, mtime=0.0)
        assert tracker.check([f], now=1, stat=fs.stat) == []
        assert tracker.check([f], now=2, stat=fs.stat) == []
        fs.put(f, 20, mtime=0.0)
        assert tracker.check([f], now=3, stat=fs.stat) == []
        assert tracker.check([f], now=4, stat=fs.stat) == []
        assert [r.path for r in tracker.check([f], now=5, stat=fs.stat)] == [f]

    def test_mtime_change_alone_resets_the_count(self, fs: FakeFiles) -> None:
        """A rewrite with the same size but a new mtime is a change."""
        f = DROP / "a.csv"
        tracker = StabilityTracker(2)
        fs.put(f, 10, mtime=0.0)
        tracker.check([f], now=1, stat=fs.stat)
        tracker.check([f], now=2, stat=fs.stat)
        fs.put(f, 10, mtime=2.5)
        assert tracker.check([f], now=3, stat=fs.stat) == []
        assert tracker.waiting() == [(f, 0, 2)]

    def test_ready_item_carries_size_and_mtime(self, fs: FakeFiles) -> None:
        """The ready item reports the size and mtime that were found stable."""
        f = DROP / "a.csv"
        fs.put(f, 1234, mtime=7.5)
        tracker = StabilityTracker(1)
        tracker.check([f], now=10, stat=fs.stat)
        assert tracker.check([f], now=11, stat=fs.stat) == [
            ReadyFile(path=f, size=1234, mtime=7.5, marker=None)
        ]

    def test_ready_file_is_returned_once(self, fs: FakeFiles) -> None:
        """A file handed out is not handed out again while it stays unchanged."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=0.0)
        tracker = StabilityTracker(1)
        assert run_checks(tracker, fs, [f], [1, 2, 3, 4]) == [[], [f], [], []]

    def test_change_after_hand_out_rearms_the_file(self, fs: FakeFiles) -> None:
        """A file that changes after it was handed out goes through the checks again."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=0.0)
        tracker = StabilityTracker(1)
        run_checks(tracker, fs, [f], [1, 2])
        fs.put(f, 2, mtime=2.5)
        assert run_checks(tracker, fs, [f], [3, 4]) == [[], [f]]

    def test_forget_rearms_a_handed_out_file(self, fs: FakeFiles) -> None:
        """forget() makes an unchanged file count from zero and be handed out again."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=0.0)
        tracker = StabilityTracker(2)
        run_checks(tracker, fs, [f], [1, 2, 3])
        tracker.forget(f)
        assert run_checks(tracker, fs, [f], [4, 5, 6]) == [[], [], [f]]

    def test_checks_below_one_are_refused(self) -> None:
        """A tracker that would never wait is a configuration error."""
        with pytest.raises(ValueError, match="at least 1"):
            StabilityTracker(0)


class TestMinimumAge:
    def test_min_age_counts_from_the_first_unchanged_sighting(self, fs: FakeFiles) -> None:
        """Enough checks are not enough until the file was seen unchanged for min_age, whatever its mtime."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=-10_000.0)  # old by its mtime: that does not count
        tracker = StabilityTracker(1, min_age_seconds=60)
        assert run_checks(tracker, fs, [f], [100, 101, 159, 160]) == [[], [], [], [f]]

    def test_a_change_restarts_the_minimum_age(self, fs: FakeFiles) -> None:
        """The age is time since the current contents were first seen, not since the path was."""
        f = DROP / "a.csv"
        tracker = StabilityTracker(1, min_age_seconds=60)
        fs.put(f, 1, mtime=0.0)
        run_checks(tracker, fs, [f], [0, 30])
        fs.put(f, 2, mtime=31.0)
        assert run_checks(tracker, fs, [f], [31, 61, 90, 91]) == [[], [], [], [f]]


class TestClocks:
    def test_a_future_mtime_does_not_block_the_load(self, fs: FakeFiles) -> None:
        """A file dated a day ahead is ready after its checks, like any other (min_age included)."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=86_400.0)
        tracker = StabilityTracker(2, min_age_seconds=0, wall_clock=lambda: 0.0)
        assert run_checks(tracker, fs, [f], [0, 1, 2]) == [[], [], [f]]

    def test_a_future_mtime_is_logged_once(self, fs: FakeFiles) -> None:
        """The warning about a clock ahead comes once per file, not once per check."""
        import structlog.testing

        f = DROP / "a.csv"
        fs.put(f, 1, mtime=86_400.0)
        tracker = StabilityTracker(5, wall_clock=lambda: 0.0)
        with structlog.testing.capture_logs() as logs:
            run_checks(tracker, fs, [f], [0, 1, 2])
            fs.put(f, 2, mtime=86_401.0)  # still growing, still ahead
            run_checks(tracker, fs, [f], [3, 4])
        warnings = [e for e in logs if "in the future" in e["event"]]
        assert len(warnings) == 1 and warnings[0]["seconds_ahead"] == 86_400

    def test_a_swapped_inode_is_a_change(self, fs: FakeFiles) -> None:
        """Another file renamed over the path with the same size and mtime starts the count again."""
        f = DROP / "a.csv"
        tracker = StabilityTracker(2)
        inode = [1]
        real_stat = fs.stat

        def stat(path: Path) -> os.stat_result:
            st = real_stat(path)
            return os.stat_result((st.st_mode, inode[0], 0, 1, 0, 0, st.st_size, 0, st.st_mtime, 0))

        fs.put(f, 10, mtime=5.0)
        tracker.check([f], now=1, stat=stat)
        tracker.check([f], now=2, stat=stat)
        inode[0] = 2
        assert tracker.check([f], now=3, stat=stat) == []
        assert tracker.waiting() == [(f, 0, 2)]


class TestCheckSpacing:
    def test_checks_closer_than_the_interval_do_not_count(self, fs: FakeFiles) -> None:
        """Extra checks woken by events do not shorten the stability window."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=0.0)
        tracker = StabilityTracker(2, min_check_interval_seconds=10)
        assert run_checks(tracker, fs, [f], [0, 1, 2, 3, 10, 11, 19]) == [[]] * 7
        assert run_checks(tracker, fs, [f], [20]) == [[f]]


class TestDisappearing:
    def test_path_missing_from_the_listing_is_forgotten(self, fs: FakeFiles) -> None:
        """A file not in a check's listing leaves tracking and starts over if it comes back."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=0.0)
        tracker = StabilityTracker(2)
        run_checks(tracker, fs, [f], [1, 2])
        assert tracker.waiting() == [(f, 1, 2)]
        tracker.check([], now=3, stat=fs.stat)
        assert tracker.waiting() == []
        assert run_checks(tracker, fs, [f], [4, 5, 6]) == [[], [], [f]]

    def test_file_deleted_between_listing_and_stat_is_dropped(self, fs: FakeFiles) -> None:
        """A stat that fails (file gone) drops the path instead of raising."""
        f, g = DROP / "a.csv", DROP / "b.csv"
        fs.put(f, 1, mtime=0.0)
        fs.put(g, 1, mtime=0.0)
        tracker = StabilityTracker(1)
        tracker.check([f, g], now=1, stat=fs.stat)
        fs.remove(f)
        assert [r.path for r in tracker.check([f, g], now=2, stat=fs.stat)] == [g]
        assert tracker.waiting() == []

    def test_non_regular_file_is_never_ready(self, fs: FakeFiles) -> None:
        """A FIFO or folder with an accepted name is never handed out."""
        f = DROP / "pipe.csv"
        fs.put(f, 0, mtime=0.0, mode=stat.S_IFIFO | 0o644)
        tracker = StabilityTracker(1)
        assert run_checks(tracker, fs, [f], [1, 2, 3]) == [[], [], []]
        assert tracker.waiting() == []


class TestMarkers:
    @pytest.mark.parametrize("marker", ["a.csv.done", "a.csv.ok", "a.done", "a.ok"])
    def test_marker_makes_the_file_ready_at_once(self, fs: FakeFiles, marker: str) -> None:
        """Both spellings, <name>.done/.ok and <stem>.done/.ok, make a file ready on first sight."""
        f = DROP / "a.csv"
        fs.put(f, 5, mtime=999.0)
        fs.put(DROP / marker, 0, mtime=999.0)
        tracker = StabilityTracker(6, min_age_seconds=3600)
        assert tracker.check([f], now=1000, stat=fs.stat) == [ReadyFile(f, 5, 999.0, DROP / marker)]

    def test_marker_that_is_a_folder_does_not_count(self, fs: FakeFiles) -> None:
        """Only a regular file is a marker."""
        f = DROP / "a.csv"
        fs.put(f, 5, mtime=0.0)
        fs.put(DROP / "a.csv.done", 0, mtime=0.0, mode=stat.S_IFDIR | 0o755)
        tracker = StabilityTracker(6)
        assert tracker.check([f], now=1, stat=fs.stat) == []

    def test_marker_of_another_file_does_not_count(self, fs: FakeFiles) -> None:
        """b.csv.done says nothing about a.csv."""
        f = DROP / "a.csv"
        fs.put(f, 5, mtime=0.0)
        fs.put(DROP / "b.csv.done", 0, mtime=0.0)
        assert StabilityTracker(6).check([f], now=1, stat=fs.stat) == []

    def test_marker_candidates_list_both_spellings(self) -> None:
        """The full-name spelling comes before the stem spelling."""
        assert [p.name for p in marker_candidates(DROP / "x.csv")] == [
            "x.csv.done",
            "x.csv.ok",
            "x.done",
            "x.ok",
        ]
        assert [p.name for p in marker_candidates(DROP / "noext")] == ["noext.done", "noext.ok"]


class TestExclusiveProbe:
    def test_failed_probe_keeps_the_file_waiting(self, fs: FakeFiles) -> None:
        """While the probe fails (writer still holds the file) the file is not handed out."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=0.0)
        held = {"open": True}
        tracker = StabilityTracker(1, probe=lambda _p: not held["open"])
        assert run_checks(tracker, fs, [f], [1, 2, 3]) == [[], [], []]
        held["open"] = False
        assert run_checks(tracker, fs, [f], [4]) == [[f]]

    def test_probe_also_gates_marker_files(self, fs: FakeFiles) -> None:
        """A marker does not bypass the exclusive-open probe."""
        f = DROP / "a.csv"
        fs.put(f, 1, mtime=0.0)
        fs.put(DROP / "a.csv.done", 0, mtime=0.0)
        assert StabilityTracker(1, probe=lambda _p: False).check([f], now=1, stat=fs.stat) == []

    def test_probe_succeeds_on_a_real_posix_file(self, tmp_path: Path) -> None:
        """On POSIX there are no mandatory locks, so the probe passes."""
        f = tmp_path / "a.csv"
        f.write_text("x\n")
        assert probe_exclusive(f) is True


class TestWaiting:
    def test_waiting_reports_progress_per_file(self, fs: FakeFiles) -> None:
        """waiting() lists each pending file with checks done and needed, sorted by path."""
        a, b = DROP / "a.csv", DROP / "b.csv"
        fs.put(a, 1, mtime=0.0)
        tracker = StabilityTracker(3)
        tracker.check([a], now=1, stat=fs.stat)
        fs.put(b, 1, mtime=0.0)
        tracker.check([b, a], now=2, stat=fs.stat)
        assert tracker.waiting() == [(a, 1, 3), (b, 0, 3)]
        assert tracker.oldest_first_seen() == 1

    def test_real_files_with_os_lstat(self, tmp_path: Path) -> None:
        """The default stat (os.lstat) works on real files and does not follow symlinks."""
        f = tmp_path / "a.csv"
        f.write_text("a\n")
        os.utime(f, (0, 0))
        link = tmp_path / "link.csv"
        link.symlink_to(f)
        tracker = StabilityTracker(1)
        tracker.check([f, link], now=100)
        assert [r.path for r in tracker.check([f, link], now=101)] == [f]
