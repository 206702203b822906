"""The one data member of a zip drop: layout checks (count, names, encryption) and a metered stream."""

from __future__ import annotations

import io
import lzma
import struct
import zipfile
import zlib
from typing import BinaryIO

from backend.load.readers.errors import (
    ArchiveLayoutError,
    DamagedFileError,
    DecompressionBombError,
    EncryptedFileError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from backend.load.readers.limits import DecompressionLimits, Meter

#: More entries than this and the zip is no single-file drop (the directory is read in memory).
MAX_ZIP_ENTRIES = 64
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_CODEC_ERRORS = (zlib.error, OSError, lzma.LZMAError, zipfile.BadZipFile)


class ZipMemberReader(io.RawIOBase):
    """The one data member of a zip, metered against the member's compressed size."""

    def __init__(
        self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, meter: Meter, source: BinaryIO | None
    ):
        super().__init__()
        self._archive = archive
        self._member = archive.open(info)
        self.meter = meter
        meter.bytes_in = info.compress_size
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        try:
            out = self._member.read(len(buffer))
        except EOFError as exc:
            raise TruncatedFileError(
                f"the zip member ends early ({exc}); the copy is incomplete. Drop the complete file again.",
                path=self.meter.name,
            ) from exc
        except _CODEC_ERRORS as exc:
            raise DamagedFileError(
                f"the zip member is damaged ({exc}); ask the sender for a new copy", path=self.meter.name
            ) from exc
        buffer[: len(out)] = out
        self.meter.produced(len(out))
        return len(out)

    def close(self) -> None:
        if not self.closed:
            self._member.close()
            self._archive.close()
            if self._source is not None:
                self._source.close()
        super().close()


def _zip_entry_count(source: BinaryIO) -> int | None:
    """Entries the end-of-central-directory record announces, read before zipfile loads them all."""
    source.seek(0, io.SEEK_END)
    size = source.tell()
    start = max(0, size - 22 - 65535)
    source.seek(start)
    tail = source.read(size - start)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    (entries,) = struct.unpack_from("<H", tail, at + 10)
    return int(entries)


def _unsafe_member_name(member: str) -> bool:
    parts = member.replace("\\", "/").split("/")
    return member.startswith(("/", "\\")) or ".." in parts or (len(member) > 1 and member[1] == ":")


def zip_data_member(
    source: BinaryIO, name: str, limits: DecompressionLimits
) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    entries = _zip_entry_count(source)
    if entries is None:
        raise TruncatedFileError(
            "is not a complete zip archive (its central directory is missing): the copy is "
            "probably incomplete. Drop the complete file again.",
            path=name,
        )
    if entries > MAX_ZIP_ENTRIES:
        raise ArchiveLayoutError(
            f"the zip holds {entries} entries; a drop must be a zip of exactly one data file", path=name
        )
    source.seek(0)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DamagedFileError(f"is not a readable zip archive ({exc})", path=name) from exc
    unsafe = [i.filename for i in archive.infolist() if _unsafe_member_name(i.filename)]
    if unsafe:
        raise ArchiveLayoutError(
            f"the zip has member names that leave the folder ({', '.join(unsafe[:3])}); refused", path=name
        )
    # Folders and the resource forks macOS Finder adds are not data.
    data = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    if len(data) != 1:
        listed = ", ".join(i.filename for i in data[:5]) or "no file"
        raise ArchiveLayoutError(
            f"the zip must hold exactly one data file, it holds {len(data)} ({listed}); "
            f"zip each file on its own or drop them uncompressed",
            path=name,
        )
    info = data[0]
    if info.flag_bits & 0x1:
        raise EncryptedFileError(
            f"the zip member {info.filename} is password protected; drop it unencrypted", path=name
        )
    if info.compress_type not in _ZIP_METHODS:
        raise UnsupportedFormatError(
            f"the zip member {info.filename} uses compression method {info.compress_type}, which "
            f"cannot be read here; re-zip it with plain deflate",
            path=name,
        )
    # zipfile stops at the declared size and then fails the CRC, so a declared size is an upper
    # bound on the output: refusing on it early is safe, and the meter still counts real bytes.
    if info.file_size > limits.max_output_bytes or (
        info.file_size > limits.ratio_grace_bytes
        and info.file_size > limits.max_ratio * max(info.compress_size, 1)
    ):
        raise DecompressionBombError(
            f"the zip member {info.filename} declares {info.file_size:,} bytes from "
            f"{info.compress_size:,}, beyond the decompression limits; nothing was loaded",
            path=name,
        )
    return archive, info
