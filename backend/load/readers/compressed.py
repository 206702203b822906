"""Streaming decompression of gzip, bzip2, xz, zstd and single-member zip, with bomb limits.

The output is a sequential binary stream: nothing is decompressed to disk and memory stays at
one input chunk plus one output chunk. Limits (`DecompressionLimits`) are checked on the bytes
actually produced. A stream that ends before its end marker is refused (`TruncatedFileError`)
when the reader reaches the end, so the pipeline must consume the whole stream before it
publishes anything: no partial load.

Concatenated members (``cat a.gz b.gz``, pbzip2, multi-frame zstd) are read as one stream, as
the command line tools do.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import zstandard

from backend.load.readers.errors import (
    DamagedFileError,
    TruncatedFileError,
)
from backend.load.readers.formats import COMPRESSION_MAGIC, COMPRESSION_SUFFIXES, Compression
from backend.load.readers.limits import DecompressionLimits, Meter
from backend.load.readers.zipmember import ZipMemberReader, zip_data_member

CHUNK_BYTES = 64 * 1024
#: zstd has no output cap per call; one input byte can expand to ~32 KiB (an RLE block), so
#: input is fed in 256-byte slices that bound one call's output to ~8 MiB.
_ZSTD_SLICE_BYTES = 256
#: xz streams from ``xz -9`` need 65 MiB; anything asking for more is refused, not allocated.
_XZ_MEMLIMIT_BYTES = 256 * 1024 * 1024
_ZSTD_MAX_WINDOW_BYTES = 1 << 27
_CODEC_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, zstandard.ZstdError, zipfile.BadZipFile)


class _Codec(Protocol):
    eof: bool

    def feed(self, data: bytes, max_length: int) -> bytes: ...
    def needs_input(self) -> bool: ...
    def leftover(self) -> bytes: ...


class _ZlibCodec:
    """gzip through zlib (wbits=31 checks the CRC and length in the trailer)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=31)
        self._tail = b""
        self.eof = False

    def feed(self, data: bytes, max_length: int) -> bytes:
        out = self._d.decompress(self._tail + data, max_length)
        self._tail = self._d.unconsumed_tail
        self.eof = self._d.eof
        return out

    def needs_input(self) -> bool:
        return not self._tail

    def leftover(self) -> bytes:
        return self._d.unused_data


class _StdlibCodec:
    """bz2 and lzma share one incremental API (buffered input, ``needs_input``)."""

    def __init__(self, d: bz2.BZ2Decompressor | lzma.LZMADecompressor) -> None:
        self._d = d
        self.eof = False

    def feed(self, data: bytes, max_length: int) -> bytes:
        out = self._d.decompress(data, max_length)
        self.eof = self._d.eof
        return out

    def needs_input(self) -> bool:
        return bool(self._d.needs_input)

    def leftover(self) -> bytes:
        return self._d.unused_data


class _ZstdCodec:
    """One zstd frame, fed in slices because ``decompress`` has no output cap."""

    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW_BYTES).decompressobj()
        self._pending = b""
        self.eof = False

    def feed(self, data: bytes, max_length: int) -> bytes:
        self._pending += data
        piece, self._pending = self._pending[:_ZSTD_SLICE_BYTES], self._pending[_ZSTD_SLICE_BYTES:]
        out = self._d.decompress(piece)
        if self._d.eof:
            self.eof = True
            self._pending = self._d.unused_data + self._pending
        return out

    def needs_input(self) -> bool:
        return not self._pending

    def leftover(self) -> bytes:
        return self._pending if self.eof else b""


_CODECS: dict[Compression, Callable[[], _Codec]] = {
    Compression.GZIP: _ZlibCodec,
    Compression.BZIP2: lambda: _StdlibCodec(bz2.BZ2Decompressor()),
    Compression.XZ: lambda: _StdlibCodec(
        lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=_XZ_MEMLIMIT_BYTES)
    ),
    Compression.ZSTD: _ZstdCodec,
}


class DecompressingReader(io.RawIOBase):
    """A read-only raw stream of the decompressed bytes of `source`."""

    def __init__(
        self, source: BinaryIO, compression: Compression, meter: Meter, *, close_source: bool
    ) -> None:
        super().__init__()
        self._source = source
        self._compression = compression
        self._make = _CODECS[compression]
        self._codec = self._make()
        self._magic = COMPRESSION_MAGIC[compression]
        self.meter = meter
        self._close_source = close_source
        self._spill = b""  # zstd output beyond the caller's buffer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if not self._spill:
            try:
                self._spill = self._next(len(buffer))
            except _CODEC_ERRORS as exc:
                raise DamagedFileError(
                    f"the {self._compression} data is damaged ({exc}); ask the sender for a new copy",
                    path=self.meter.name,
                ) from exc
            self.meter.produced(len(self._spill))
        out, self._spill = self._spill[: len(buffer)], self._spill[len(buffer) :]
        buffer[: len(out)] = out
        return len(out)

    def _read_source(self) -> bytes:
        data = self._source.read(CHUNK_BYTES)
        self.meter.bytes_in += len(data)
        return data

    def _next(self, size: int) -> bytes:
        while True:
            if self._codec.eof:
                rest = self._codec.leftover() or self._read_source()
                if not rest:
                    return b""
                if not rest.startswith(self._magic[: len(rest)]):
                    raise DamagedFileError(
                        f"unexpected bytes after the end of the {self._compression} stream; "
                        f"the file is not one clean {self._compression} file",
                        path=self.meter.name,
                    )
                self._codec = self._make()  # the next concatenated member or frame
                data = rest
            else:
                data = self._read_source() if self._codec.needs_input() else b""
                if not data and self._codec.needs_input():
                    raise TruncatedFileError(
                        f"the {self._compression} stream ends before its end marker after "
                        f"{self.meter.bytes_in:,} bytes: the copy is incomplete; nothing was loaded. "
                        f"Drop the complete file again.",
                        path=self.meter.name,
                    )
            out = self._codec.feed(data, size)
            if out:
                return out

    def close(self) -> None:
        if self._close_source and not self.closed:
            self._source.close()
        super().close()


@dataclass(frozen=True, slots=True)
class Decompressed:
    """A decompressing stream and what it holds."""

    #: Buffered, sequential, not seekable. Closing it closes the source only when asked to.
    stream: BinaryIO
    #: Name of the data inside: ``countries.csv`` for ``countries.csv.gz`` or the zip member.
    inner_name: str
    compression: Compression
    raw: DecompressingReader | ZipMemberReader

    @property
    def bytes_in(self) -> int:
        """Compressed bytes read so far (for the log line)."""
        return self.raw.meter.bytes_in

    @property
    def bytes_out(self) -> int:
        """Decompressed bytes produced so far."""
        return self.raw.meter.bytes_out


def strip_compression_suffix(name: str) -> str:
    """``countries.csv.gz`` -> ``countries.csv``; a name without one is returned as it is."""
    lowered = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def open_decompressed(
    source: BinaryIO,
    compression: Compression,
    *,
    name: str,
    limits: DecompressionLimits | None = None,
    close_source: bool = False,
) -> Decompressed:
    """Wrap `source` so that reading it yields the decompressed bytes.

    Args:
        source: the compressed file, opened in binary mode (seekable for zip).
        compression: the layer `detect_format` found.
        name: the file's name, for messages and the inner name.
        limits: bomb limits; the defaults when None.
        close_source: close `source` when the returned stream is closed.

    Raises:
        ArchiveLayoutError, EncryptedFileError, UnsupportedFormatError, DecompressionBombError,
        TruncatedFileError: the zip cannot be read as one data file (at once); for the stream
        formats, truncation and damage are raised when the reader reaches them.
    """
    meter = Meter(name, limits or DecompressionLimits())
    raw: DecompressingReader | ZipMemberReader
    if compression is Compression.ZIP:
        archive, info = zip_data_member(source, name, meter.limits)
        raw = ZipMemberReader(archive, info, meter, source if close_source else None)
        inner = info.filename.rsplit("/", 1)[-1]
    else:
        raw = DecompressingReader(source, compression, meter, close_source=close_source)
        inner = strip_compression_suffix(name)
    stream: BinaryIO = io.BufferedReader(raw, buffer_size=CHUNK_BYTES)
    return Decompressed(stream, inner, compression, raw)


def reopen_decompressed(
    reopen: Callable[[], BinaryIO],
    compression: Compression,
    *,
    name: str,
    limits: DecompressionLimits | None = None,
) -> Callable[[], BinaryIO]:
    """A `reopen` for readers that need a second pass over the decompressed bytes (JSON)."""

    def again() -> BinaryIO:
        return open_decompressed(reopen(), compression, name=name, limits=limits, close_source=True).stream

    return again
