"""Opening a dropped file safely: never through a symlink, never blocking on a FIFO."""

from __future__ import annotations

import os
import stat
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
