"""Opening a dropped file safely (never through a symlink, never blocking on a FIFO), and
reading it at an offset without moving the position its other reader relies on.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from backend.errors import FileChangedError, FileRejectedError

# O_NOFOLLOW: a symlink swapped in after the scan is refused, not followed.
# O_NONBLOCK: opening a FIFO swapped in after the scan must not hang the worker (it has no
# effect on reading a regular file).
_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
)


def open_regular_file(path: Path, *, buffering: int = 1 << 20) -> IO[bytes]:
    """Open `path` for reading; refuse a symlink or anything but a regular file.

    Raises:
        FileChangedError: the file disappeared (retryable).
        FileRejectedError: permission denied, a symlink, or not a regular file.
    """
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise FileChangedError(f"{path.name}: file disappeared before it could be read", path=path) from None
    except PermissionError:
        raise FileRejectedError(
            f"{path.name}: permission denied reading the file", path=path, stage="read"
        ) from None
    except OSError as exc:
        raise FileRejectedError(
            f"{path.name}: cannot open ({exc.strerror or exc}); symlinks are not followed",
            path=path,
            stage="read",
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileRejectedError(f"{path.name}: not a regular file", path=path, stage="read")
    return os.fdopen(fd, "rb", buffering=buffering)


# Emulated positional reads move the shared offset for a moment: one lock for all of them, so
# that two threads never interleave between the seek and the read.
_SEEK_LOCK = threading.Lock()


def _seek_read(fd: int, size: int, offset: int) -> bytes:
    """`os.pread` for systems without it (Windows): seek, read, then put the offset back.

    The descriptor is shared with the loader's hashing stream, whose next read must start
    where it left off, so the offset is restored even when the read fails.
    """
    with _SEEK_LOCK:
        saved = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            chunks: list[bytes] = []
            while size > 0:  # a pipe-like short read is retried, as pread's callers expect a full one
                chunk = os.read(fd, size)
                if not chunk:
                    break
                chunks.append(chunk)
                size -= len(chunk)
            return b"".join(chunks)
        finally:
            os.lseek(fd, saved, os.SEEK_SET)


#: Chosen once at import: the daemon also runs as a Windows service, where `os.pread` is missing.
_read_at: Callable[[int, int, int], bytes] = getattr(os, "pread", _seek_read)


def read_at(fd: int, size: int, offset: int) -> bytes:
    """Up to `size` bytes of `fd` from `offset`, leaving the descriptor's own position as it was.

    Args:
        fd: an open, seekable file descriptor.
        size: most bytes to read (fewer only at the end of the file).
        offset: where to start, from the file's first byte.
    """
    return _read_at(fd, size, offset)
