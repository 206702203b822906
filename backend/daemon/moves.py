"""Moving a file without ever replacing what is at the destination, durably, on any volume.

The primitives behind every move of `backend.daemon.folders` (and of the folder marker): an
atomic no-replace rename on the same volume (``renameat2(RENAME_NOREPLACE)`` on Linux, a hard
link + unlink elsewhere, a checked rename as the last resort), a copy to a hidden temp file +
fsync + no-replace rename + unlink across volumes, so the destination never holds a partial
file, and atomic JSON writes for sidecars.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_COPY_CHUNK_BYTES = 1024 * 1024


def move_file(src: Path, dest: Path) -> None:
    """Move without ever replacing `dest` (FileExistsError instead); copy across volumes."""
    try:
        rename_noreplace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        if os.path.lexists(dest):  # spare the copy of a large file that could not land anyway
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest)) from None
        copy_across_volumes(src, dest)
    fsync_dir(dest.parent)
    if src.parent != dest.parent:
        fsync_dir(src.parent)


def rename_noreplace(src: Path, dest: Path) -> None:
    if sys.platform == "win32":
        os.rename(src, dest)  # MoveFileExW without REPLACE_EXISTING: fails if dest exists
        return
    renameat2 = _renameat2()
    if renameat2 is not None:
        at_fdcwd, rename_noreplace = -100, 1
        if renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dest), rename_noreplace) == 0:
            return
        code = ctypes.get_errno()
        # EINVAL/ENOSYS: this filesystem or kernel has no RENAME_NOREPLACE; use a hard link.
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code), str(src), None, str(dest))
    try:
        os.link(src, dest, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links either (some network filesystems): check, then rename. The window
        # between the two is the one race left, and only between two movers of the same name.
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest)) from None
        os.rename(src, dest)
        return
    os.unlink(src)


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None  # glibc < 2.28 or another libc without the wrapper
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


def copy_across_volumes(src: Path, dest: Path) -> None:
    """Copy to a hidden temp file beside `dest`, fsync, rename into place, then unlink `src`."""
    info = src.lstat()
    fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=dest.parent)  # mode 0o600
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as source:
            shutil.copyfileobj(source, out, _COPY_CHUNK_BYTES)
            out.flush()
            if out.tell() != info.st_size:
                raise OSError(errno.EIO, f"{src.name} changed size while being copied", str(src))
            os.fsync(out.fileno())
        os.chmod(tmp, stat.S_IMODE(info.st_mode) & 0o777)
        os.utime(tmp, ns=(info.st_atime_ns, info.st_mtime_ns))
        rename_noreplace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    src.unlink()


def write_json_atomic(path: Path, data: Mapping[str, Any], *, mode: int) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=2, default=str)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a filesystem that cannot fsync a folder is not an error."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
