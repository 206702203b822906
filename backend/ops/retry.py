"""`retry`: put a file from a product error/ folder back into its drop folder, and nothing else.

Only a data file directly inside one of the four ``<dropoff>/<kind>/<mode>/error/`` folders of
the configured dropoff (or the tracking id of the load that put it there) is accepted. Anything
else is refused with the reason, because moving it would strand it: a sidecar moved into a drop
folder is never loaded, and a file taken from a folder that merely is called ``error/`` is not
ours to move. The file's sidecar travels with it (see `folders.move_back_for_retry`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from backend import tracking
from backend.daemon import folders as lifecycle
from backend.daemon.stability import MARKER_SUFFIXES
from backend.db.engine import Database
from backend.errors import IngestError, NotFoundError


def retry(db: Database | None, base: Path, target: str) -> Path:
    """Put a file from an error/ folder back into its drop folder; returns its new path.

    Args:
        db: the database (needed only when `target` is a tracking id).
        base: the configured dropoff (DROPOFF_BASE_PATH).
        target: a tracking id, or the path of a file in a product error/ folder.

    Raises:
        NotFoundError: no such load, or the file is gone.
        IngestError: `target` is not a file `retry` may move; the message says why.
    """
    error_file = _file_of_load(db, int(target)) if target.isdigit() else Path(target)
    check_retryable(base, error_file)
    try:
        return lifecycle.move_back_for_retry(error_file)
    except (ValueError, FileExistsError) as exc:
        raise IngestError(f"cannot retry {error_file.name}: {exc}") from None


def _file_of_load(db: Database | None, tracking_id: int) -> Path:
    if db is None:
        raise IngestError("a tracking id needs the database")
    row = tracking.get(db, tracking_id)
    if row is None:
        raise NotFoundError(f"no load with id {tracking_id}")
    if not row.moved_to or Path(row.moved_to).parent.name != lifecycle.ERROR:
        raise IngestError(
            f"load {tracking_id} did not leave a file in an error/ folder (status {row.status})"
        )
    return Path(row.moved_to)


def check_retryable(base: Path, error_file: Path) -> None:
    """Refuse, with the reason, anything but a data file in one of the dropoff's error/ folders."""
    name = error_file.name
    if name.endswith(lifecycle.SIDECAR_SUFFIX):
        data = error_file.with_name(name[: -len(lifecycle.SIDECAR_SUFFIX)])
        raise IngestError(
            f"{name} is the sidecar describing {data.name}, not a file to load; "
            f"retry the file itself: python -m backend retry {data}"
        )
    if name.endswith(lifecycle.REJECTS_SUFFIX):
        raise IngestError(
            f"{name} holds the rows a load skipped; fix them and drop them as a new file instead"
        )
    if name.lower().endswith(MARKER_SUFFIXES):
        raise IngestError(f"{name} is a readiness marker; retry the file it belongs to")
    if name.startswith("."):
        raise IngestError(f"{name} is a hidden (temporary) file, not a file to load")
    folder = os.path.realpath(error_file.parent)
    ours = [os.path.realpath(f.path / lifecycle.ERROR) for f in lifecycle.drop_folders(base)]
    if os.path.normcase(folder) not in {os.path.normcase(p) for p in ours}:
        raise IngestError(
            f"{error_file} is not in an error/ folder of the dropoff {base} "
            f"(only files in <dropoff>/<reference_data_table|none_reference_data_table>/"
            f"<fullload|append>/error/ can be retried)"
        )
    try:
        info = error_file.lstat()
    except FileNotFoundError:
        raise NotFoundError(f"{error_file} does not exist (already retried or removed?)") from None
    if not stat.S_ISREG(info.st_mode):
        raise IngestError(f"{error_file} is not a regular file (a symlink or a folder is never moved)")
