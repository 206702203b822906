"""CSV detection for delimited text inside a compression layer (``countries.csv.gz``).

`backend.detection.detect` reads its sample with ``pread`` from a real file: the first
``SAMPLE_BYTES`` and, when the file is larger, its last 64 KiB (where a trailer is). A
decompressing stream cannot be read that way, so the stream is read once, front to back, and
only those two pieces are kept: written one after the other into a temporary file, they are
exactly what `detect` would have read from the decompressed file, and the file on disk stays
bounded by the sample (never the whole decompressed data). Reading the stream to its end also
applies the decompression limits and finds a truncated stream before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from backend.config import Settings
from backend.detection import TAIL_BYTES, detect
from backend.load.readers.view import DRAIN_BYTES
from backend.models import Detection


def detect_decompressed(
    path: Path, open_stream: Callable[[], BinaryIO], settings: Settings, *, trailer_detection: bool = True
) -> Detection:
    """Detect the dialect, header and types of the decompressed text `open_stream()` yields.

    Args:
        path: the dropped file (for messages).
        open_stream: opens the decompressed bytes from their start; the stream is closed here.
        settings: as for `detect` (``sample_bytes`` sets the sample).
        trailer_detection: as for `detect` (the table's policy).

    Raises:
        DetectionError, EmptyFileError: as `detect`.
        DecompressionBombError, TruncatedFileError, DamagedFileError: while decompressing.
    """
    limit = settings.sample_bytes
    with open_stream() as stream:
        head = _read_exactly(stream, limit)
        tail = bytearray()
        total = len(head)
        if len(head) == limit:
            while chunk := stream.read(DRAIN_BYTES):
                total += len(chunk)
                tail += chunk
                if len(tail) > 2 * TAIL_BYTES:  # trimmed now and then, not on every chunk
                    del tail[:-TAIL_BYTES]
            del tail[:-TAIL_BYTES]
    with tempfile.TemporaryFile(prefix="refdata-sample-") as sample:
        sample.write(head)
        sample.write(tail)
        sample.flush()
        written = len(head) + len(tail)
        detection = detect(path, settings, source=sample, trailer_detection=trailer_detection)
    if detection.estimated_rows is not None and total > written:
        # `detect` estimated from the sample file's size; the data is `total` bytes long.
        detection = dataclasses.replace(
            detection, estimated_rows=round(detection.estimated_rows * total / max(written, 1))
        )
    return detection


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes: a buffered decompressing stream may return fewer per read."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
