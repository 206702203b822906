"""A second, independent read position on the file the loader opened.

The loader hashes the file's bytes as they are read (`backend.load.source.HashingReader`), and
that stream is sequential. Workbooks, Parquet and zip archives need random access, and JSON
needs a second pass, so those readers read through a `FileView`: the same open file (so a path
swapped for another file meanwhile is never read), with its own offset (`backend.files.read_at`:
``os.pread``, or its fallback on Windows), which leaves the loader's stream position where the
hashing left it.
"""

from __future__ import annotations

import io
import os
from typing import IO, BinaryIO, cast

from backend.files import read_at

#: Bytes drained per read when the hashing stream is read to its end.
DRAIN_BYTES = 1024 * 1024


class FileView(io.RawIOBase):
    """A read-only, seekable view of an open file descriptor, with its own position."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = read_at(self._fd, len(buffer), self._position)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        else:
            self._position = os.fstat(self._fd).st_size + offset
        if self._position < 0:
            raise ValueError("negative seek position")
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        # The descriptor belongs to the loader; a view never closes it.
        super().close()


def open_view(raw: IO[bytes]) -> BinaryIO:
    """A buffered view of `raw` from its first byte (closing the view leaves `raw` open)."""
    return cast(BinaryIO, io.BufferedReader(FileView(raw.fileno()), buffer_size=DRAIN_BYTES))


def drain(stream: IO[bytes]) -> None:
    """Read `stream` to its end, so that a hashing stream has seen every byte of the file."""
    while stream.read(DRAIN_BYTES):
        pass
