"""The folders the product works in: created by `init-db` / `setup_directories.py`, checked by the rest.

Every path comes from the settings (DROPOFF_BASE_PATH, DATA_DIR or the SQLite file of
DATABASE_URL, LOG_FILE, CONFIG_DIR). Only the set-up commands create folders; every other command
refuses to start with one line naming the missing folder and the setting behind it, instead of
quietly creating ``data/`` and ``dropoff/`` in whatever folder it happens to run in.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from backend.config import Settings
from backend.daemon.folders import ensure_directories, ensure_directory
from backend.errors import ConfigError

SETUP_HINT = "run `refdata-monitor init-db` (or setup_directories.py) to create it"


def sqlite_folder(settings: Settings) -> Path | None:
    """The folder of the SQLite database file, or None for another database (or in-memory SQLite)."""
    url = make_url(settings.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).parent


def create_folders(settings: Settings) -> list[Path]:
    """Create the dropoff tree, the data folder, the SQLite file's folder and LOG_FILE's folder.

    Returns:
        The folders created (none when everything exists: safe to run again).

    Raises:
        ConfigError: a path exists but is not a folder, or cannot be created.
    """
    created = ensure_directories(settings.dropoff_base_path) + ensure_directory(settings.data_dir)
    for extra in (sqlite_folder(settings), settings.log_file.parent if settings.log_file else None):
        if extra is not None and extra != Path(""):
            created += ensure_directory(extra)
    return created


def check_folders(settings: Settings, *, daemon: bool) -> None:
    """Refuse to start when a folder the command needs is missing or not writable.

    Args:
        settings: the settings.
        daemon: the `run` command, which also needs the dropoff folder.

    Raises:
        ConfigError: one line naming the folder, the setting and what to do.
    """
    folder = sqlite_folder(settings)
    if folder is not None:
        source = "DATABASE_URL" if settings.database_url is not None else "DATA_DIR"
        _require_writable(folder, "SQLite database folder", source)
        database = Path(make_url(settings.url).database or "")
        if database.exists() and not os.access(database, os.R_OK | os.W_OK):
            raise ConfigError(f"the SQLite database {database} is not readable and writable ({source})")
    if daemon:
        base = settings.dropoff_base_path
        if not base.is_dir():
            raise ConfigError(
                f"dropoff folder {_shown(base)} does not exist (DROPOFF_BASE_PATH); {SETUP_HINT}"
            )


def _require_writable(folder: Path, what: str, setting: str) -> None:
    if not folder.is_dir():
        raise ConfigError(f"{what} {_shown(folder)} does not exist ({setting}); {SETUP_HINT}")
    try:
        # A real write, not os.access: root passes access() even where a dropped capability,
        # a read-only mount or an ACL will refuse the database's writes.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"{what} {_shown(folder)} is not writable ({setting}): {exc.strerror}") from None


def _shown(path: Path) -> str:
    """The path, and where a relative one points (the current folder is rarely what was meant)."""
    return str(path) if path.is_absolute() else f"{path} (relative to {Path.cwd()})"
