"""The dropoff folder tree and every move a file makes through it.

    <base>/{reference_data_table,none_reference_data_table}/{fullload,append}/   drop folders
                                                          .../processed/       loaded files
                                                          .../error/           rejected files + sidecars

The folder a file is dropped into decides whether its table is reference data and how it is
loaded (`classify`). Moves never overwrite: the destination name is
``<YYYYMMDD_HHMMSS>_<original name>`` (UTC), then ``<YYYYMMDD_HHMMSS>-1_<original name>``,
``-2``, ... on a clash. A move is an atomic no-replace rename on the same volume and a
copy-to-temp + fsync + rename + unlink across volumes (`backend.daemon.moves`), so the
destination never holds a partial file. Readiness markers (``x.csv.done``, ``x.ok``) travel with their file.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from backend.daemon import moves
from backend.daemon.stability import marker_candidates
from backend.errors import ConfigError
from backend.models import LoadType

log = structlog.get_logger(__name__)

REFERENCE_FOLDER = "reference_data_table"
NON_REFERENCE_FOLDER = "none_reference_data_table"
PROCESSED = "processed"
ERROR = "error"
SIDECAR_SUFFIX = ".error.json"
#: The sidecar of an earlier failure, next to its file in processed/ once a retry loaded it.
PREVIOUS_SIDECAR_SUFFIX = ".previous" + SIDECAR_SUFFIX
#: Rows a `RAGGED_ROWS=skip` load left out, next to the file's sidecar in error/.
REJECTS_SUFFIX = ".rejects.csv"
#: Mode of the folders we create (the umask may narrow it further, never widen it).
DIR_MODE = 0o750
#: Longest file name in bytes on the filesystems we target (ext4, XFS, NTFS in UTF-16 units).
NAME_MAX_BYTES = 255

_PREFIX_RE = re.compile(r"^(\d{8}_\d{6})(?:-\d+)?_(.+)$", re.DOTALL)
_TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
_MAX_CLASHES = 10_000


@dataclass(frozen=True, slots=True)
class DropFolder:
    """One of the four folders files are dropped into, and what it means for the load."""

    path: Path
    is_reference: bool
    load_type: LoadType


def drop_folders(base: Path) -> list[DropFolder]:
    """The four drop folders under `base`."""
    return [
        DropFolder(Path(base) / kind / load_type.value, is_reference, load_type)
        for kind, is_reference in ((REFERENCE_FOLDER, True), (NON_REFERENCE_FOLDER, False))
        for load_type in (LoadType.FULLLOAD, LoadType.APPEND)
    ]


def ensure_directory(path: Path) -> list[Path]:
    """Create `path` (and missing parents) with mode 0o750; return the folders created.

    An existing folder is left as it is, but a world-writable one is logged as a warning:
    anyone on the machine could then drop files that end up in the tables.

    Raises:
        ConfigError: the path exists and is not a folder, or cannot be created.
    """
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{probe} exists but is not a folder")
    created: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
            created.append(folder)
        except FileExistsError:
            pass  # created concurrently (another instance running setup): fine if it is a folder
        except OSError as exc:
            raise ConfigError(f"cannot create folder {folder}: {exc.strerror}") from None
    if not path.is_dir():
        raise ConfigError(f"{path} exists but is not a folder")
    if path not in created:
        _warn_if_world_writable(path)
    return created


def ensure_directories(base: Path) -> list[Path]:
    """Create the whole dropoff tree under `base` where missing; return the folders created."""
    created = ensure_directory(base)
    for folder in drop_folders(base):
        for path in (folder.path, folder.path / PROCESSED, folder.path / ERROR):
            created += ensure_directory(path)
    return created


def _warn_if_world_writable(path: Path) -> None:
    mode = path.stat().st_mode
    if sys.platform != "win32" and mode & stat.S_IWOTH:
        log.warning(
            "folder is world-writable: any local user can drop files into it",
            path=str(path),
            mode=oct(stat.S_IMODE(mode)),
            fix=f"chmod o-w {path}",
        )


def classify(path: Path, base: Path) -> tuple[bool, LoadType] | None:
    """(is_reference, load_type) for a file directly inside a drop folder, else None."""
    parent = os.path.normcase(os.path.dirname(os.path.abspath(path)))
    for folder in drop_folders(Path(os.path.abspath(base))):
        if os.path.normcase(str(folder.path)) == parent:
            return folder.is_reference, folder.load_type
    return None


def move_to_processed(path: Path, folder: Path, now: float) -> Path:
    """Move a loaded file (and its readiness marker) to ``<folder>/processed/``.

    Args:
        path: the file, normally directly inside `folder`.
        folder: its drop folder.
        now: the time of the move (seconds since the epoch), used for the name prefix.

    Returns:
        The file's new path ``<folder>/processed/<YYYYMMDD_HHMMSS>[-n]_<name>``. The sidecar
        of an earlier failure that travelled with a retried file lands beside it as
        ``<new name>.previous.error.json``.
    """
    path = Path(path)
    earlier = travelling_sidecar(path)
    reserve = len(PREVIOUS_SIDECAR_SUFFIX) if _is_regular(earlier) else 0
    dest = _move_with_markers(path, Path(folder) / PROCESSED, now, reserve_bytes=reserve)
    if reserve:
        try:
            moves.move_file(earlier, dest.with_name(dest.name + PREVIOUS_SIDECAR_SUFFIX))
        except OSError as exc:
            log.warning("could not move the earlier sidecar along", path=str(earlier), error=str(exc))
    return dest


def move_to_error(path: Path, folder: Path, now: float, sidecar: Mapping[str, Any]) -> Path:
    """Move a rejected file to ``<folder>/error/`` and write ``<new name>.error.json`` beside it.

    Args:
        path: the file.
        folder: its drop folder.
        now: the time of the move (seconds since the epoch).
        sidecar: what went wrong, e.g. reason, stage, exception_type, detection, rows,
            tracking_id. ``file`` (the original path) and ``moved_at`` (ISO 8601, UTC) are added.

    Returns:
        The file's new path. If the sidecar cannot be written the error is logged and the
        file stays in error/ without it (the file's place matters more than its description).
    """
    path = Path(path)
    info = path.lstat()
    # A symlink's own mode is 0o777 whatever it points at: its sidecar gets owner-only rights.
    mode = stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else 0o600
    dest = _move_with_markers(path, Path(folder) / ERROR, now, reserve_bytes=len(SIDECAR_SUFFIX))
    body = dict(sidecar)
    body["file"] = str(path)
    body["moved_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    earlier = travelling_sidecar(path)
    previous = _read_json(earlier)
    if previous is not None:
        body["previous"] = previous  # the failure before the retry, folded into the new sidecar
    try:
        # Never readable by more users than the data it describes (it may quote row values).
        moves.write_json_atomic(sidecar_path(dest), body, mode=mode & 0o666)
    except OSError:
        log.exception("could not write the error sidecar", path=str(dest))
    else:
        earlier.unlink(missing_ok=True)
    return dest


def sidecar_path(error_file: Path) -> Path:
    """Where the ``.error.json`` sidecar of a file in error/ lives."""
    return error_file.with_name(error_file.name + SIDECAR_SUFFIX)


def travelling_sidecar(path: Path) -> Path:
    """Where the sidecar of a retried file waits beside it in its drop folder: ``.<name>.error.json``.

    Hidden, so that no scan ever takes it for a file to load (whatever ACCEPTED_EXTENSIONS says);
    it leaves the drop folder with its file (`move_to_processed`, `move_to_error`).
    """
    name = "." + path.name + SIDECAR_SUFFIX
    if len(os.fsencode(name)) > NAME_MAX_BYTES:
        name = "." + hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16] + SIDECAR_SUFFIX
    return path.with_name(name)


def place_rejects(rejects: Path, moved: Path, folder: Path, tracking_id: int) -> Path:
    """Move the rejects file of a load to ``<folder>/error/<moved file name>.rejects.csv``.

    Whether the file itself went to processed/ (rows were skipped, the rest loaded) or to
    error/, its skipped rows wait in error/, where an operator looks for what went wrong.
    A name too long for the filesystem becomes ``<tracking id>_<moved prefix>.rejects.csv``.
    """
    name = moved.name + REJECTS_SUFFIX
    if len(os.fsencode(name)) > NAME_MAX_BYTES:
        match = _PREFIX_RE.match(moved.name)
        name = f"{match.group(1) if match else 'load'}_{tracking_id}{REJECTS_SUFFIX}"
    dest_dir = Path(folder) / ERROR
    ensure_directory(dest_dir)
    dest = dest_dir / name
    moves.move_file(Path(rejects), dest)
    return dest


def read_sidecar(error_file: Path) -> dict[str, Any] | None:
    """The sidecar of a file in error/, or None if it is missing or unreadable."""
    return _read_json(sidecar_path(error_file))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def original_name(name: str) -> str:
    """`name` without the ``<YYYYMMDD_HHMMSS>[-n]_`` prefix our moves add."""
    match = _PREFIX_RE.match(name)
    return match.group(2) if match else name


def is_moved_name(moved: str, original: str) -> bool:
    """Whether `moved` (a name in processed/ or error/) is what a move of `original` would be called."""
    match = _PREFIX_RE.match(moved)
    if not match or moved.endswith((SIDECAR_SUFFIX, REJECTS_SUFFIX)):
        return False
    if match.group(2) == original:
        return True
    # A name shortened to fit NAME_MAX keeps a tag of the full name (see `_fit_name`).
    return "~" + hashlib.sha256(os.fsencode(original)).hexdigest()[:8] in match.group(2)


def error_files(base: Path) -> list[Path]:
    """Files waiting in the error/ folders (sidecars, rejects and temporary files left out), by name."""
    found: list[Path] = []
    for folder in drop_folders(base):
        with contextlib.suppress(FileNotFoundError), os.scandir(folder.path / ERROR) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name.endswith((SIDECAR_SUFFIX, REJECTS_SUFFIX)):
                    continue
                if entry.is_file(follow_symlinks=False):
                    found.append(Path(entry.path))
    return sorted(found)


def move_back_for_retry(error_file: Path) -> Path:
    """Put a file from error/ back into its drop folder under its original name.

    The original name comes from the sidecar (so a name shortened to fit the prefix is
    restored) or else from stripping the prefix. Markers moved along with the file go back
    too, and the sidecar travels with it (`travelling_sidecar`): into the next sidecar if the
    file fails again, beside it in processed/ if it loads.

    Raises:
        ValueError: `error_file` is not inside an error/ folder.
        FileExistsError: a file of that name is already waiting in the drop folder.
    """
    error_file = Path(error_file)
    if error_file.parent.name != ERROR:
        raise ValueError(f"{error_file} is not inside an {ERROR}/ folder")
    drop = error_file.parent.parent
    recorded = (read_sidecar(error_file) or {}).get("file")
    name = Path(recorded).name if isinstance(recorded, str) else ""
    if name in ("", ".", ".."):
        name = original_name(error_file.name)
    dest = drop / name
    try:
        moves.move_file(error_file, dest)
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, f"{name} is already waiting in {drop}; move or remove it first", str(dest)
        ) from None
    match = _PREFIX_RE.match(error_file.name)
    if match:
        prefix = error_file.name[: len(error_file.name) - len(match.group(2))]
        for marker in marker_candidates(dest):
            moved = error_file.parent / _fit_name(prefix[:-1], marker.name, 0)
            with contextlib.suppress(FileNotFoundError, FileExistsError):
                moves.move_file(moved, marker)
    sidecar = sidecar_path(error_file)
    if _is_regular(sidecar):
        travelling = travelling_sidecar(dest)
        travelling.unlink(missing_ok=True)  # left by an earlier retry whose file was removed
        try:
            moves.move_file(sidecar, travelling)
        except OSError as exc:
            log.warning("could not move the sidecar along with its file", path=str(sidecar), error=str(exc))
    log.info("file put back for a retry", path=str(dest), from_path=str(error_file))
    return dest


def purge_processed(base: Path, older_than_days: float, now: float) -> int:
    """Delete files in the processed/ folders moved there more than `older_than_days` ago.

    Age comes from the name's timestamp prefix (the time of the move, not the file's mtime);
    files without our prefix are never deleted. 0 or less deletes nothing.

    Returns:
        The number of files deleted.
    """
    if older_than_days <= 0:
        return 0
    cutoff = now - older_than_days * 86400
    deleted = 0
    for folder in drop_folders(base):
        with contextlib.suppress(FileNotFoundError), os.scandir(folder.path / PROCESSED) as entries:
            for entry in entries:
                moved_at = _prefix_time(entry.name)
                if moved_at is None or moved_at >= cutoff or not entry.is_file(follow_symlinks=False):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    deleted += 1
    if deleted:
        log.info("old processed files deleted", count=deleted, older_than_days=older_than_days)
    return deleted


def _prefix_time(name: str) -> float | None:
    match = _PREFIX_RE.match(name)
    if not match:
        return None
    try:
        return float(calendar.timegm(time.strptime(match.group(1), _TIMESTAMP_FORMAT)))
    except ValueError:
        return None


# --- moving (the primitives are in backend.daemon.moves) --------------------------------


def _move_with_markers(path: Path, dest_dir: Path, now: float, *, reserve_bytes: int) -> Path:
    markers = [m for m in marker_candidates(path) if _is_regular(m)]
    stamp = time.strftime(_TIMESTAMP_FORMAT, time.gmtime(now))
    for n in range(_MAX_CLASHES):
        prefix = stamp if n == 0 else f"{stamp}-{n}"
        dest = dest_dir / _fit_name(prefix, path.name, reserve_bytes)
        if reserve_bytes and os.path.lexists(sidecar_path(dest)):
            continue  # an orphaned sidecar would describe the wrong file
        try:
            moves.move_file(path, dest)
        except FileExistsError:
            continue
        for marker in markers:
            _move_marker(marker, dest_dir, stamp, n)
        log.debug("file moved", path=str(path), to=str(dest))
        return dest
    raise FileExistsError(errno.EEXIST, f"no free name for {path.name} in {dest_dir}", str(dest_dir))


def _move_marker(marker: Path, dest_dir: Path, stamp: str, start: int) -> None:
    for n in range(start, start + _MAX_CLASHES):
        prefix = stamp if n == 0 else f"{stamp}-{n}"
        try:
            moves.move_file(marker, dest_dir / _fit_name(prefix, marker.name, 0))
            return
        except FileExistsError:
            continue
        except FileNotFoundError:
            return  # the uploader removed it meanwhile


def _fit_name(prefix: str, name: str, reserve_bytes: int) -> str:
    """``<prefix>_<name>``, with `name` shortened (extension kept) to fit NAME_MAX."""
    candidate = f"{prefix}_{name}"
    limit = NAME_MAX_BYTES - reserve_bytes
    if len(os.fsencode(candidate)) <= limit:
        return candidate
    stem, dot, ext = name.rpartition(".")
    suffix = dot + ext if stem and len(os.fsencode(ext)) <= 16 else ""
    stem = name[: len(name) - len(suffix)]
    # A hash of the full name keeps two long names with the same beginning apart.
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    budget = limit - len(os.fsencode(prefix)) - 1 - len(os.fsencode(suffix)) - len(tag)
    kept: list[str] = []
    for char in stem:
        budget -= len(os.fsencode(char))
        if budget < 0:
            break
        kept.append(char)
    return f"{prefix}_{''.join(kept)}{tag}{suffix}"


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False
