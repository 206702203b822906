"""`retry` moves only data files out of the dropoff's own error/ folders, with their sidecars."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.daemon import folders as lifecycle
from backend.errors import IngestError
from backend.ops.retry import retry
from tests.support import make_settings, open_db

NOW = 1_700_000_000.0


@pytest.fixture
def setup(tmp_path: Path, sqlite_url: str):
    settings = make_settings(tmp_path, sqlite_url)
    lifecycle.ensure_directories(settings.dropoff_base_path)
    folder = settings.dropoff_base_path / "reference_data_table" / "fullload"
    source = folder / "rates.csv"
    source.write_text("a\n1\n")
    moved = lifecycle.move_to_error(source, folder, NOW, {"reason": "bad", "tracking_id": 7})
    return settings, folder, moved


class TestRetry:
    def test_a_sidecar_is_refused_and_names_its_file(self, setup):
        """Given the .error.json sidecar, retry refuses, names the file to retry, and moves nothing."""
        settings, folder, moved = setup
        sidecar = lifecycle.sidecar_path(moved)
        with pytest.raises(IngestError, match=r"sidecar describing .*rates\.csv.*retry the file itself"):
            retry(None, settings.dropoff_base_path, str(sidecar))
        assert moved.exists() and sidecar.exists() and not (folder / "rates.csv").exists()

    def test_a_rejects_file_and_a_marker_are_refused(self, setup):
        """Rows skipped by a load and readiness markers are not files to retry."""
        settings, _folder, moved = setup
        rejects = moved.with_name(moved.name + lifecycle.REJECTS_SUFFIX)
        rejects.write_text("line,fields\n")
        marker = moved.with_name(moved.name + ".done")
        marker.write_text("")
        with pytest.raises(IngestError, match="rows a load skipped"):
            retry(None, settings.dropoff_base_path, str(rejects))
        with pytest.raises(IngestError, match="readiness marker"):
            retry(None, settings.dropoff_base_path, str(marker))
        assert rejects.exists() and marker.exists()

    def test_a_folder_named_error_elsewhere_is_refused(self, setup, tmp_path: Path):
        """A file in some other error/ folder is not the product's to move."""
        settings, _folder, _moved = setup
        elsewhere = tmp_path / "elsewhere" / "fullload" / "error"
        elsewhere.mkdir(parents=True)
        stray = elsewhere / "20240101_000000_x.csv"
        stray.write_text("a\n")
        with pytest.raises(IngestError, match="not in an error/ folder of the dropoff"):
            retry(None, settings.dropoff_base_path, str(stray))
        assert stray.exists() and not (elsewhere.parent / "x.csv").exists()

    def test_a_symlink_in_error_is_refused(self, setup, tmp_path: Path):
        """A symlink planted in error/ is never moved (it could point anywhere)."""
        settings, _folder, moved = setup
        link = moved.with_name("20240101_000000_link.csv")
        link.symlink_to(tmp_path / "outside.csv")
        with pytest.raises(IngestError, match="not a regular file"):
            retry(None, settings.dropoff_base_path, str(link))

    def test_the_file_moves_back_with_its_sidecar(self, setup):
        """The file returns under its name; its sidecar leaves error/ with it, hidden beside it."""
        settings, folder, moved = setup
        assert retry(None, settings.dropoff_base_path, str(moved)) == folder / "rates.csv"
        assert list((folder / "error").iterdir()) == []
        assert lifecycle.travelling_sidecar(folder / "rates.csv").exists()

    def test_a_dropoff_reached_through_a_symlink_is_still_ours(self, setup, tmp_path: Path):
        """The same error/ folder named through a symlinked path is accepted."""
        settings, _folder, moved = setup
        alias = tmp_path / "alias"
        alias.symlink_to(settings.dropoff_base_path)
        via = alias / "reference_data_table" / "fullload" / "error" / moved.name
        assert retry(None, settings.dropoff_base_path, str(via)).name == "rates.csv"

    def test_a_tracking_id_outside_the_configured_dropoff_is_refused(self, setup, tmp_path: Path):
        """A load whose file went to an error/ folder of another dropoff is refused by id too."""
        from backend import tracking
        from backend.models import LoadRequest

        settings, _folder, moved = setup
        db = open_db(settings)
        try:
            tracking_id = tracking.start(db, LoadRequest(path=moved), table="rates", size=4, mtime=None)
            tracking.record_move(db, tracking_id, moved, status="error")
            other = tmp_path / "other-dropoff"
            with pytest.raises(IngestError, match="not in an error/ folder of the dropoff"):
                retry(db, other, str(tracking_id))
            assert retry(db, settings.dropoff_base_path, str(tracking_id)).name == "rates.csv"
        finally:
            db.dispose()
