"""The bytes a load reads: hashed as they are parsed, and proven unchanged before anything is published."""

from __future__ import annotations

import hashlib
import os
from typing import IO, Any

from backend.errors import FileChangedError
from backend.models import LoadRequest


class HashingReader:
    """A binary file wrapper that hashes exactly the bytes handed to the parser."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0
        self._closed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        self.bytes_read += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size if size is not None and size >= 0 else 1 << 16)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        # A text wrapper closes its buffer when it is collected; the loader still needs the
        # raw file afterwards (hash check, fstat), so only mark this wrapper closed.
        self._closed = True

    def flush(self) -> None:
        return None

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False


def check_unchanged(
    request: LoadRequest, raw: IO[bytes], hashing: HashingReader, before: os.stat_result
) -> None:
    """Abort if the bytes read are not the bytes claimed, or the file moved under us."""
    # Drain what the parser did not need (e.g. trailing blank lines) so the hash covers the file.
    while raw.closed is False and (chunk := raw.read(1 << 20)):
        hashing.sha256.update(chunk)
        hashing.bytes_read += len(chunk)
    after = os.fstat(raw.fileno())
    digest = hashing.sha256.hexdigest()
    changed = (
        after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
        or hashing.bytes_read != after.st_size
        or (request.sha256 is not None and digest != request.sha256)
    )
    if changed:
        raise FileChangedError(
            f"{request.path.name}: file changed while it was being loaded; it will be retried when stable",
            path=request.path,
        )
