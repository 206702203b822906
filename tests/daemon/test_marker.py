"""The dropoff's marker: one folder, one database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.daemon.marker import MARKER_NAME, FolderMarker, database_key
from backend.errors import ConfigError
from tests.support import make_settings


def settings_for(tmp_path: Path, url: str, **extra):
    return make_settings(tmp_path, url, **extra)


class TestDatabaseKey:
    def test_spelling_of_the_url_does_not_matter(self, tmp_path: Path):
        """Driver, user, password, host case and a default port do not make another database."""
        a = database_key(settings_for(tmp_path, "postgresql://alice:pw1@DB.example/refdata"))
        b = database_key(settings_for(tmp_path, "postgresql+psycopg://bob:pw2@db.example:5432/refdata"))
        assert a == b and "pw" not in a and "alice" not in a

    def test_another_database_schema_or_file_is_another_key(self, tmp_path: Path):
        """A different database name, data schema or SQLite file is a different database."""
        base = database_key(settings_for(tmp_path, "postgresql://h/one"))
        assert database_key(settings_for(tmp_path, "postgresql://h/two")) != base
        assert database_key(settings_for(tmp_path, "postgresql://h/one", data_schema="other")) != base
        one = database_key(settings_for(tmp_path, f"sqlite:///{tmp_path}/a.db"))
        assert database_key(settings_for(tmp_path, f"sqlite:///{tmp_path}/x/../a.db")) == one
        assert database_key(settings_for(tmp_path, f"sqlite:///{tmp_path}/b.db")) != one


class TestMarker:
    def test_the_first_daemon_writes_a_masked_marker(self, tmp_path: Path):
        """The marker names the database with its password masked, and the daemon that wrote it."""
        settings = settings_for(tmp_path, "postgresql://u:s3cret@h/db")
        settings.dropoff_base_path.mkdir()
        FolderMarker(settings, "host:1:abc").claim()
        text = (settings.dropoff_base_path / MARKER_NAME).read_text()
        body = json.loads(text)
        assert "s3cret" not in text and body["daemon"] == "host:1:abc" and body["schema"] == "ref"

    def test_another_database_is_refused_with_the_reason(self, tmp_path: Path):
        """A daemon of another database refuses to start, naming both databases and the way out."""
        first = settings_for(tmp_path, f"sqlite:///{tmp_path}/a.db")
        first.dropoff_base_path.mkdir()
        FolderMarker(first, "h:1:a").claim()
        second = settings_for(tmp_path, "postgresql://u:pw@h/db")
        with pytest.raises(ConfigError, match="belongs to another database") as caught:
            FolderMarker(second, "h:2:b").claim()
        message = str(caught.value)
        assert "a.db" in message and "postgresql://u:***@h/db" in message and "delete the marker" in message

    def test_the_same_database_takes_the_marker_over(self, tmp_path: Path):
        """A second daemon of the same database starts and records itself."""
        settings = settings_for(tmp_path, f"sqlite:///{tmp_path}/a.db")
        settings.dropoff_base_path.mkdir()
        FolderMarker(settings, "h:1:a").claim()
        FolderMarker(settings, "h:2:b").claim()
        assert json.loads((settings.dropoff_base_path / MARKER_NAME).read_text())["daemon"] == "h:2:b"

    def test_a_marker_replaced_by_another_database_stops_dispatch(self, tmp_path: Path):
        """check() reports another database's marker written while we run, and a deleted one comes back."""
        ours = settings_for(tmp_path, f"sqlite:///{tmp_path}/a.db")
        ours.dropoff_base_path.mkdir()
        marker = FolderMarker(ours, "h:1:a")
        marker.claim()
        assert marker.check() is None
        marker.path.unlink()
        assert marker.check() is None and marker.path.exists()
        marker.path.unlink()
        FolderMarker(settings_for(tmp_path, f"sqlite:///{tmp_path}/b.db"), "h:2:b").claim()
        assert "belongs to another database" in (marker.check() or "")

    def test_an_unreadable_marker_is_refused(self, tmp_path: Path):
        """A marker that is not ours (not our JSON) is not silently overwritten."""
        settings = settings_for(tmp_path, f"sqlite:///{tmp_path}/a.db")
        settings.dropoff_base_path.mkdir()
        (settings.dropoff_base_path / MARKER_NAME).write_text("garbage")
        with pytest.raises(ConfigError, match="unreadable marker"):
            FolderMarker(settings, "h:1:a").claim()
