"""Streaming decompression: round trips, truncation, damage, zip layout and bomb limits."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import time
import zipfile
import zlib

import pytest
import zstandard

from backend.load.readers.compressed import open_decompressed, reopen_decompressed, strip_compression_suffix
from backend.load.readers.errors import (
    ArchiveLayoutError,
    DamagedFileError,
    DecompressionBombError,
    EncryptedFileError,
    TruncatedFileError,
)
from backend.load.readers.formats import Compression
from backend.load.readers.limits import MIB, DecompressionLimits

# Varied text that compresses like a real extract (about 5-10x), not like zeros.
DATA = b"".join(b"%d,code-%05d,name number %d,%.2f\n" % (i, i % 997, i, i / 7) for i in range(20000))

COMPRESSORS = {
    Compression.GZIP: gzip.compress,
    Compression.BZIP2: bz2.compress,
    Compression.XZ: lzma.compress,
    Compression.ZSTD: lambda data: zstandard.ZstdCompressor().compress(data),
}


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def read_all(data: bytes, compression: Compression, **kwargs) -> bytes:
    opened = open_decompressed(io.BytesIO(data), compression, name="file.csv.x", **kwargs)
    with opened.stream as stream:
        return stream.read()


class TestRoundTrip:
    @pytest.mark.parametrize("compression", list(COMPRESSORS))
    def test_stream_formats_give_back_the_bytes_their_own_tool_wrote(self, compression):
        """gzip, bz2, lzma and zstandard output decompresses to exactly the original bytes."""
        assert read_all(COMPRESSORS[compression](DATA), compression) == DATA

    @pytest.mark.parametrize("compression", list(COMPRESSORS))
    def test_concatenated_members_are_read_as_one_stream(self, compression):
        """Two members written back to back (cat a.gz b.gz) yield both members' bytes."""
        compress = COMPRESSORS[compression]
        assert read_all(compress(DATA[:1000]) + compress(DATA[1000:]), compression) == DATA

    def test_zip_with_one_member_yields_that_member_and_its_name(self):
        """A zip of one file streams that file and reports the member's name as the inner name."""
        opened = open_decompressed(
            io.BytesIO(zip_bytes({"export/countries.csv": DATA})), Compression.ZIP, name="c.zip"
        )
        assert opened.inner_name == "countries.csv"
        assert opened.stream.read() == DATA
        assert opened.bytes_out == len(DATA)

    def test_zip_folders_and_macos_resource_forks_are_not_counted_as_data(self):
        """Directory entries and __MACOSX/ members beside the one data file are ignored."""
        data = zip_bytes({"d/": b"", "__MACOSX/._a.csv": b"junk", "d/a.csv": DATA})
        assert read_all(data, Compression.ZIP) == DATA

    def test_reopen_gives_a_fresh_stream_from_the_start(self):
        """The second-pass opener decompresses the file again from its first byte."""
        payload = gzip.compress(DATA)
        again = reopen_decompressed(lambda: io.BytesIO(payload), Compression.GZIP, name="a.json.gz")
        first, second = again(), again()
        assert first.read(10) == DATA[:10]
        assert second.read() == DATA

    def test_compression_suffix_is_stripped_from_the_name(self):
        """countries.csv.gz holds countries.csv; a name without a suffix is kept."""
        assert strip_compression_suffix("countries.csv.GZ") == "countries.csv"
        assert strip_compression_suffix("countries.csv") == "countries.csv"


class TestRefusals:
    @pytest.mark.parametrize("compression", list(COMPRESSORS))
    def test_truncated_stream_is_refused_instead_of_ending_quietly(self, compression):
        """A stream cut in the middle raises TruncatedFileError when its end is reached."""
        payload = COMPRESSORS[compression](DATA)
        with pytest.raises(TruncatedFileError, match="incomplete"):
            read_all(payload[: len(payload) // 2], compression)

    def test_corrupted_gzip_is_refused_as_damaged(self):
        """A flipped byte inside gzip data fails its checks and is reported as damage."""
        payload = bytearray(gzip.compress(DATA))
        payload[len(payload) // 2] ^= 0xFF
        with pytest.raises((DamagedFileError, TruncatedFileError)):
            read_all(bytes(payload), Compression.GZIP)

    def test_gzip_with_a_wrong_length_trailer_is_refused(self):
        """The gzip trailer's length check catches a stream whose size does not match."""
        payload = bytearray(gzip.compress(DATA))
        struct.pack_into("<I", payload, len(payload) - 4, len(DATA) + 1)
        with pytest.raises(DamagedFileError, match="damaged"):
            read_all(bytes(payload), Compression.GZIP)

    def test_bytes_after_the_stream_are_refused(self):
        """Trailing garbage after a complete gzip stream is not silently ignored."""
        with pytest.raises(DamagedFileError, match="after the end"):
            read_all(gzip.compress(DATA) + b"garbage", Compression.GZIP)

    def test_zip_with_two_members_is_refused_with_their_names(self):
        """A zip of two data files is refused and the message lists them."""
        with pytest.raises(ArchiveLayoutError, match=r"holds 2 \(a.csv, b.csv\)"):
            read_all(zip_bytes({"a.csv": DATA, "b.csv": DATA}), Compression.ZIP)

    def test_zip_without_files_is_refused(self):
        """A zip holding only a folder has no data file and is refused."""
        with pytest.raises(ArchiveLayoutError, match="holds 0"):
            read_all(zip_bytes({"folder/": b""}), Compression.ZIP)

    @pytest.mark.parametrize("member", ["../evil.csv", "/etc/evil.csv", "a/../../evil.csv", "C:\\evil.csv"])
    def test_zip_member_names_that_escape_the_folder_are_refused(self, member):
        """Zip-slip names (parent references, absolute paths, drive letters) are refused."""
        with pytest.raises(ArchiveLayoutError, match="leave the folder"):
            read_all(zip_bytes({member: DATA}), Compression.ZIP)

    def test_encrypted_zip_member_is_refused(self):
        """A member with the encryption flag set is refused as password protected."""
        payload = bytearray(zip_bytes({"a.csv": DATA}))
        for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = payload.find(signature)
            (flags,) = struct.unpack_from("<H", payload, at + offset)
            struct.pack_into("<H", payload, at + offset, flags | 0x1)
        with pytest.raises(EncryptedFileError, match="password"):
            read_all(bytes(payload), Compression.ZIP)

    def test_truncated_zip_is_refused_as_incomplete(self):
        """A zip cut before its central directory is refused as an incomplete copy."""
        payload = zip_bytes({"a.csv": DATA})
        with pytest.raises(TruncatedFileError, match="central directory"):
            read_all(payload[: len(payload) - 30], Compression.ZIP)

    def test_zip_member_larger_than_declared_fails_instead_of_growing(self):
        """A central directory that understates the size cannot smuggle out more bytes."""
        payload = bytearray(zip_bytes({"a.csv": DATA}))
        at = payload.rfind(b"PK\x01\x02")
        struct.pack_into("<I", payload, at + 24, 1000)
        with pytest.raises(DamagedFileError, match="CRC"):
            read_all(bytes(payload), Compression.ZIP)


def zeros_bomb(compress_chunk, flush, total: int) -> bytes:
    """Compress `total` zero bytes chunk by chunk (never all in memory)."""
    chunk = bytes(4 * MIB)
    parts = [compress_chunk(chunk) for _ in range(total // len(chunk))]
    return b"".join(parts) + flush()


@pytest.fixture(scope="module")
def bombs() -> dict[Compression, bytes]:
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    bz = bz2.BZ2Compressor(9)
    xz = lzma.LZMACompressor(format=lzma.FORMAT_XZ)
    zs = zstandard.ZstdCompressor(level=3).compressobj()
    total = 128 * MIB
    return {
        Compression.GZIP: zeros_bomb(gz.compress, gz.flush, total),
        Compression.BZIP2: zeros_bomb(bz.compress, bz.flush, total),
        Compression.XZ: zeros_bomb(xz.compress, xz.flush, total),
        Compression.ZSTD: zeros_bomb(zs.compress, zs.flush, total),
    }


class TestBombLimits:
    @pytest.mark.parametrize("compression", list(COMPRESSORS))
    def test_bomb_stops_soon_after_the_grace_bytes(self, bombs, compression):
        """128 MiB of zeros in a small file stops at the ratio limit after ~16 MiB, quickly."""
        payload = bombs[compression]
        assert len(payload) < 2 * MIB
        opened = open_decompressed(io.BytesIO(payload), compression, name="bomb.csv.x")
        started = time.monotonic()
        with pytest.raises(DecompressionBombError, match="200:1"):
            while opened.stream.read(MIB):
                pass
        assert opened.bytes_out < 25 * MIB  # grace plus at most one decompression call
        assert time.monotonic() - started < 5

    def test_zip_bomb_is_refused_before_reading(self):
        """A zip member declaring 64 MiB from a few KB is refused on opening."""
        with pytest.raises(DecompressionBombError, match="declares"):
            read_all(zip_bytes({"a.csv": bytes(64 * MIB)}), Compression.ZIP)

    def test_total_output_limit_counts_produced_bytes(self):
        """Output beyond max_output_bytes is refused even at a harmless ratio."""
        limits = DecompressionLimits(max_output_bytes=len(DATA) // 2)
        with pytest.raises(DecompressionBombError, match="more than"):
            read_all(gzip.compress(DATA), Compression.GZIP, limits=limits)

    def test_small_file_may_expand_a_lot_within_the_grace_bytes(self):
        """A tiny, highly repetitive file (1 MiB from a few KB) is not mistaken for a bomb."""
        data = b"a,b,c\n" + b"1,1,1\n" * (MIB // 6)
        assert read_all(gzip.compress(data), Compression.GZIP) == data
