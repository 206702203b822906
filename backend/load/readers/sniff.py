"""Decide a file's format by its magic bytes first and its name second.

`detect_format` looks at the first bytes (`HEAD_BYTES` is enough) and the file name. A zip is
told from an xlsx/xlsm by its ``[Content_Types].xml`` (inflated from the sample) or its ``xl/``
members; an OLE compound file is a legacy .xls or, with an ``EncryptionInfo`` stream, a
password-protected xlsx. For a compressed file the sample is partly decompressed to guess what
is inside; once the pipeline has opened the decompressed stream it confirms with
`detect_inner`, which is authoritative. When the content contradicts the name, the content
wins and `FormatGuess.mismatch` says so for the log and the tracking row.
"""

from __future__ import annotations

import bz2
import codecs
import json
import lzma
import re
import struct
import zlib
from dataclasses import dataclass

import zstandard

from backend.errors import EmptyFileError
from backend.load.readers.compressed import strip_compression_suffix
from backend.load.readers.errors import ArchiveLayoutError, EncryptedFileError, UnsupportedFormatError
from backend.load.readers.formats import (
    COMPRESSION_MAGIC,
    COMPRESSION_SUFFIXES,
    FORMAT_SUFFIXES,
    STREAMABLE,
    Compression,
    Format,
)

#: Bytes the pipeline should read from the start of a file for `detect_format`.
HEAD_BYTES = 64 * 1024
_PEEK_BYTES = 64 * 1024
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_OTHER_BINARY: tuple[tuple[bytes, str], ...] = (
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF-", "a PDF document"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "a Windows executable"),
)
_FORMAT_LABELS = {
    Format.CSV: "delimited text",
    Format.XLSX: "an Excel workbook (xlsx)",
    Format.XLSM: "a macro-enabled Excel workbook (xlsm)",
    Format.XLS: "a legacy Excel workbook (xls)",
    Format.JSON: "a JSON array",
    Format.NDJSON: "NDJSON (one object per line)",
    Format.PARQUET: "a Parquet file",
}
_JSON_ARRAY = re.compile(r"\A\s*\[\s*(\{|\]|\Z)")


@dataclass(frozen=True, slots=True)
class FormatGuess:
    """What a file is, how it is wrapped, and whether its name agrees."""

    #: The file name as dropped.
    name: str
    format: Format
    compression: Compression | None
    #: Name of the data once decompressed (``countries.csv`` for ``countries.csv.gz``).
    inner_name: str
    #: The table the file loads into, before normalisation: the dropped name without its suffixes.
    table_name: str
    #: Why the name and the content disagree (for the log and the tracking row), or None.
    mismatch: str | None
    #: How the format was decided, for ``detect`` output.
    evidence: str


def detect_format(head: bytes, name: str) -> FormatGuess:
    """Decide the format of a file from its first bytes and its name.

    Args:
        head: the first bytes of the file (`HEAD_BYTES` of them, or the whole file if shorter).
        name: the file name as dropped.

    Raises:
        EmptyFileError: no bytes at all.
        UnsupportedFormatError: a binary format we do not load, nested compression, or a
            workbook/Parquet file inside a compression layer.
        EncryptedFileError: a password-protected workbook or zip member.
    """
    if not head:
        raise EmptyFileError("the file is empty (0 bytes)", path=name)
    compression = _compression_of(head)
    if compression is None:
        fmt, evidence = _content_format(head, name)
        return _guess(fmt, None, name, name, evidence)
    inner_name = strip_compression_suffix(name)
    if compression is Compression.ZIP:
        inner_name, inner_head = _zip_peek(head, name)
    else:
        inner_head = _peek(head, compression)
    if inner_head:
        fmt, evidence = _inner_format(inner_head, inner_name, compression, name)
    else:  # the sample did not decompress far enough (bzip2 blocks are up to 900 KB)
        fmt, evidence = FORMAT_SUFFIXES.get(_suffix(inner_name), Format.CSV), "inner format from the name"
        _require_streamable(fmt, compression, name)
    return _guess(fmt, compression, name, inner_name, f"{compression} magic bytes; {evidence}")


def detect_inner(guess: FormatGuess, inner_head: bytes) -> FormatGuess:
    """Confirm the inner format from the first decompressed bytes (authoritative)."""
    if guess.compression is None:
        return guess
    if not inner_head:
        raise EmptyFileError("the compressed file holds no data (0 bytes)", path=guess.inner_name)
    fmt, evidence = _inner_format(inner_head, guess.inner_name, guess.compression, guess.name)
    return _guess(
        fmt, guess.compression, guess.name, guess.inner_name, f"{guess.compression} magic bytes; {evidence}"
    )


def _guess(
    fmt: Format, compression: Compression | None, name: str, inner_name: str, evidence: str
) -> FormatGuess:
    base = strip_compression_suffix(name)
    table = base[: -len(_suffix(base))] if _suffix(base) in FORMAT_SUFFIXES else base
    mismatch = _mismatch(name, inner_name, fmt, compression)
    return FormatGuess(name, fmt, compression, inner_name, table, mismatch, evidence)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _mismatch(name: str, inner_name: str, fmt: Format, compression: Compression | None) -> str | None:
    named_compression = COMPRESSION_SUFFIXES.get(_suffix(name))
    what = _FORMAT_LABELS[fmt] + (f" compressed with {compression}" if compression else "")
    if named_compression is not compression:
        return f"the content is {what} but the name {name!r} says {named_compression or 'uncompressed'}"
    named_format = FORMAT_SUFFIXES.get(_suffix(inner_name))
    if named_format is not None and named_format is not fmt:
        return f"the content is {what} but the name {name!r} says {named_format}; read as {fmt}"
    return None


def _compression_of(head: bytes) -> Compression | None:
    for compression, magic in COMPRESSION_MAGIC.items():
        if head.startswith(magic) and not (compression is Compression.ZIP and _ooxml_kind(head)):
            return compression
    return None


def _require_streamable(fmt: Format, compression: Compression, name: str) -> None:
    if fmt not in STREAMABLE:
        raise UnsupportedFormatError(
            f"holds {_FORMAT_LABELS[fmt]} inside {compression}; workbooks and Parquet files are "
            f"compressed already and need random access, so drop the file itself uncompressed",
            path=name,
        )


def _inner_format(head: bytes, inner_name: str, compression: Compression, name: str) -> tuple[Format, str]:
    if _compression_of(head) is not None:
        raise UnsupportedFormatError(
            f"is compressed twice ({compression} around {_compression_of(head)}); "
            f"drop it with one layer of compression",
            path=name,
        )
    fmt, evidence = _content_format(head, inner_name)
    _require_streamable(fmt, compression, name)
    return fmt, evidence


def _content_format(head: bytes, name: str) -> tuple[Format, str]:
    if head.startswith(b"PK\x03\x04"):
        kind = _ooxml_kind(head)
        if isinstance(kind, Format):
            return kind, "zip magic bytes with spreadsheet parts"
        raise UnsupportedFormatError(
            f"is {kind or 'a zip archive'}, not a workbook we load; save it as .xlsx or CSV", path=name
        )
    if head.startswith(_OLE_MAGIC):
        return _ole_format(head, name)
    if head.startswith(b"PAR1"):
        return Format.PARQUET, "Parquet magic bytes PAR1"
    for magic, what in _OTHER_BINARY:
        if head.startswith(magic):
            raise UnsupportedFormatError(f"is {what}, not a data file we load", path=name)
    if head[257:262] == b"ustar":
        raise UnsupportedFormatError("is a tar archive; drop the files it holds one by one", path=name)
    return _text_format(head, name)


def _ooxml_kind(head: bytes) -> Format | str | None:
    """XLSX/XLSM for a spreadsheet package, a description for other OOXML, None for a plain zip."""
    names: list[str] = []
    for at in (m.start() for m in re.finditer(b"PK\x03\x04", head)):
        if at + _LOCAL_HEADER.size > len(head):
            break
        fields = _LOCAL_HEADER.unpack_from(head, at)
        method, name_length, extra_length = fields[3], fields[9], fields[10]
        start = at + _LOCAL_HEADER.size
        member = head[start : start + name_length].decode("utf-8", "replace")
        names.append(member)
        if member == "[Content_Types].xml":
            content = _inflate(head[start + name_length + extra_length :], method)
            if b"spreadsheetml.sheet.main" in content or b"spreadsheetml.template.main" in content:
                return Format.XLSX
            if b"ms-excel.sheet.macroEnabled" in content or b"ms-excel.template.macroEnabled" in content:
                return Format.XLSM
            if b"wordprocessingml" in content:
                return "a Word document"
            if b"presentationml" in content:
                return "a PowerPoint presentation"
    if any(n.startswith("xl/") for n in names):
        return Format.XLSM if "xl/vbaProject.bin" in names else Format.XLSX
    return None


def _inflate(data: bytes, method: int) -> bytes:
    if method == 0:
        return data[:_PEEK_BYTES]
    if method != 8:
        return b""
    try:
        return zlib.decompressobj(-15).decompress(data, _PEEK_BYTES)
    except zlib.error:
        return b""


def _zip_peek(head: bytes, name: str) -> tuple[str, bytes]:
    """Name and first bytes of the zip's first data member, as far as the sample holds them."""
    at = 0
    while at + _LOCAL_HEADER.size <= len(head) and head.startswith(b"PK\x03\x04", at):
        _, _, flags, method, _, _, _, size, _, name_length, extra_length = _LOCAL_HEADER.unpack_from(head, at)
        start = at + _LOCAL_HEADER.size
        member = head[start : start + name_length].decode("utf-8", "replace")
        data_at = start + name_length + extra_length
        if member.endswith("/") or member.startswith("__MACOSX/"):
            if flags & 0x8:  # sizes follow the data: the next header cannot be found cheaply
                break
            at = data_at + size
            continue
        if flags & 0x1:
            raise EncryptedFileError(
                f"the zip member {member} is password protected; drop it unencrypted", path=name
            )
        return member.rsplit("/", 1)[-1], _inflate(head[data_at:], method)
    raise ArchiveLayoutError(
        "the zip holds no data file that could be found; drop the file itself", path=name
    )


def _peek(head: bytes, compression: Compression) -> bytes:
    """Decompress the start of `head`, at most `_PEEK_BYTES` of output; b"" when it cannot."""
    try:
        if compression is Compression.GZIP:
            return zlib.decompressobj(31).decompress(head, _PEEK_BYTES)
        if compression is Compression.BZIP2:
            return bz2.BZ2Decompressor().decompress(head, _PEEK_BYTES)
        if compression is Compression.XZ:
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(head, _PEEK_BYTES)
        out = b""
        d = zstandard.ZstdDecompressor(max_window_size=1 << 27).decompressobj()
        for at in range(0, len(head), 1024):  # slices bound the output of each call
            out += d.decompress(head[at : at + 1024])
            if len(out) >= _PEEK_BYTES or d.eof:
                break
        return out[:_PEEK_BYTES]
    except (zlib.error, OSError, EOFError, lzma.LZMAError, zstandard.ZstdError):
        return b""  # damage is reported with its offset when the stream is read


def _ole_format(head: bytes, name: str) -> tuple[Format, str]:
    # Directory entry names are UTF-16LE; they are usually in the sample. The Excel reader checks
    # the full directory again (olefile) before reading, so a miss here is not a hole.
    if "EncryptedPackage".encode("utf-16-le") in head or "EncryptionInfo".encode("utf-16-le") in head:
        raise EncryptedFileError(
            "is a password-protected (encrypted) Excel workbook; save it without a password "
            "(File > Info > Protect Workbook > Encrypt with Password, clear it) and drop it again",
            path=name,
        )
    return Format.XLS, "OLE compound file (legacy Excel)"


def _text_format(head: bytes, name: str) -> tuple[Format, str]:
    text = _decode_start(head, name)
    if _JSON_ARRAY.match(text):
        return Format.JSON, "text starting with '[' and an object"
    if text.lstrip().startswith("{"):
        first = text.lstrip().split("\n", 1)[0]
        try:
            is_object = isinstance(json.loads(first), dict)
        except ValueError:
            is_object = False
        named = FORMAT_SUFFIXES.get(_suffix(name))
        if is_object or ("\n" not in text.lstrip() and named is Format.NDJSON):
            return Format.NDJSON, "text whose first line is a JSON object"
        return Format.JSON, "text starting with '{' over several lines"
    return Format.CSV, "text"


def _decode_start(head: bytes, name: str) -> str:
    """The start of a text sample as str (for the JSON checks), refusing unknown binary."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if head.startswith(bom):
            text = head[len(bom) : 4096].decode(encoding, "replace")
            if encoding != "utf-8" and text.lstrip()[:1] in ("[", "{"):
                raise UnsupportedFormatError(f"is JSON in {encoding}; save it as UTF-8", path=name)
            return text
    nul = head.find(b"\x00")
    sample = head[:4096]
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    utf16 = max(odd, even) > 0.4 * (len(sample) // 2) and min(odd, even) < 0.05 * (len(sample) // 2)
    if nul >= 0 and not utf16:
        raise UnsupportedFormatError(
            f"is not a format we recognise: binary content (NUL byte at offset {nul}) without a "
            f"known signature; drop CSV, Excel, JSON, NDJSON or Parquet",
            path=name,
        )
    return head[:4096].decode("utf-8", "replace")
