"""Which codec decodes a file: BOM, then strict UTF-8, then charset-normalizer, then cp1252.

Order (jawah/charset_normalizer#627, #358 and #371 show why statistics come last):

1. A byte order mark decides (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE); confidence 1.0.
2. Binary files are refused: known signatures (ZIP/xlsx, PNG, PDF, gzip, OLE2/xls, ...), NUL
   bytes (unless the NULs form UTF-16 without a BOM) and control bytes.
3. Strict UTF-8 over the sample (and over the tail, when one was read); a sample cut in the
   middle of a character is trimmed by the incremental decoder. Pure ASCII counts as UTF-8.
   A sample that is mostly valid UTF-8 with a few bad bytes is a damaged UTF-8 file: an error
   naming the byte offset in strict mode, UTF-8 with U+FFFD in replace mode.
4. Line breaks that are all CR (no LF anywhere): Mac Roman. Excel for Mac writes its "CSV
   (Macintosh)" format that way; nothing else writes CR-only lines with 8-bit text today, and
   read as cp1252 every accent would silently become another character.
5. Too few non-ASCII bytes for statistics (short files): cp1252, else latin-1.
6. charset-normalizer on the lines holding non-ASCII bytes, limited to an allowlist; any
   western single-byte answer becomes cp1252 (its superset of latin-1's printable range),
   and latin-1 only when the bytes are undefined in cp1252 (0x81, 0x8D, 0x8F, 0x90, 0x9D).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import structlog

from backend.errors import DetectionError

log = structlog.get_logger(__name__)

#: Longest BOM first: the UTF-32 LE mark starts with the UTF-16 LE one.
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

#: Encodings charset-normalizer may answer with; others are too easily confused (cp1250,
#: cp1257, mac_*: #358, #371, #477) and need an explicit override.
ALLOWED_ENCODINGS = (
    "cp1252",
    "latin_1",
    "cp1251",
    "cp932",
    "shift_jis",
    "euc_jp",
    "gb18030",
    "big5",
    "euc_kr",
)
_WESTERN = frozenset({"cp1252", "latin_1", "iso8859_1", "iso8859_15", "cp1250", "cp1257", "ascii"})

#: Fewer non-ASCII bytes than this and statistics mean nothing (#477: 42 bytes -> mac_latin2).
MIN_STATISTICAL_BYTES = 16
_STATISTICS_BYTES = 64 * 1024

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (xlsx?)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 document (xls?)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"PAR1", "a Parquet file"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ\x90\x00", "a Windows executable"),
)

# Bytes that never occur in text: C0 controls except TAB, LF, VT, FF, CR, and SUB/ESC.
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 26, 27))
_HIGH = bytes(range(128, 256))
_CP1252_UNDEFINED = re.compile(b"[\x81\x8d\x8f\x90\x9d]")
_NON_ASCII_LINE = re.compile(rb"[^\n]*[\x80-\xff][^\n]*\n?")


@dataclass(frozen=True, slots=True)
class EncodingGuess:
    """The codec chosen for a file and how sure we are."""

    encoding: str
    confidence: float
    bom: bytes = b""
    warnings: tuple[str, ...] = ()


def bom_of(head: bytes) -> tuple[bytes, str] | None:
    """The byte order mark `head` starts with and its codec, if any."""
    for bom, encoding in BOMS:
        if head.startswith(bom):
            return bom, encoding
    return None


def _reject_signature(head: bytes) -> None:
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise DetectionError(f"not a text file: starts like {what}")


def reject_binary(head: bytes) -> None:
    """Raise DetectionError when `head` (without BOM) is clearly not text."""
    _reject_signature(head)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DetectionError(f"not a text file: NUL byte at offset {nul}")
    sample = head[:65536]
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    if controls and controls * 200 > len(sample):
        first = next(i for i, b in enumerate(sample) if b in _CONTROL)
        raise DetectionError(
            f"not a text file: {controls} control bytes in the first {len(sample)} bytes "
            f"(first at offset {first})"
        )


def _utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when the NUL bytes say so (ASCII-heavy UTF-16, no BOM)."""
    sample = head[: 4096 - 4096 % 2]
    if len(sample) < 8:
        return None
    even_nul = sample[0::2].count(0)
    odd_nul = sample[1::2].count(0)
    half = len(sample) // 2
    if odd_nul > 0.4 * half and even_nul < 0.05 * half:
        return "utf-16-le"
    if even_nul > 0.4 * half and odd_nul < 0.05 * half:
        return "utf-16-be"
    return None


def decode_sample(data: bytes, encoding: str, *, final: bool, errors: str = "strict") -> tuple[str, int]:
    """Decode `data`, leaving an incomplete trailing character undecoded.

    Returns the text and the number of bytes it came from.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    text = decoder.decode(data, final=final)
    pending = decoder.getstate()[0]
    return text, len(data) - len(pending)


def _utf8_error(data: bytes, *, final: bool) -> UnicodeDecodeError | None:
    try:
        decode_sample(data, "utf-8", final=final)
    except UnicodeDecodeError as exc:
        return exc
    return None


def _trim_partial_start(tail: bytes) -> bytes:
    """Drop UTF-8 continuation bytes a tail read may start with."""
    skip = 0
    while skip < min(3, len(tail)) and 0x80 <= tail[skip] <= 0xBF:
        skip += 1
    return tail[skip:]


def detect_encoding(
    head: bytes,
    tail: bytes = b"",
    *,
    complete: bool,
    decode_errors: str = "strict",
) -> EncodingGuess:
    """Choose the codec of a file from its first bytes (and optionally its last bytes).

    Args:
        head: the first bytes of the file (the sample).
        tail: the last bytes of the file when it is larger than the sample, else b"".
        complete: `head` is the whole file (no character can be cut at its end).
        decode_errors: "strict" raises on a damaged UTF-8 sample, "replace" accepts it.

    Raises:
        DetectionError: binary content, or a damaged UTF-8 sample in strict mode.
    """
    found = bom_of(head)
    if found is not None:
        bom, encoding = found
        return EncodingGuess(encoding, 1.0, bom)
    _reject_signature(head)
    utf16 = _utf16_without_bom(head)
    if utf16 is not None:
        return EncodingGuess(utf16, 0.9, warnings=("UTF-16 without a byte order mark",))
    reject_binary(head)

    error = _utf8_error(head, final=complete)
    if error is None:
        tail_error = _utf8_error(_trim_partial_start(tail), final=True) if tail else None
        if tail_error is None or not head.isascii():
            # Damage in a tail that follows real UTF-8 is for the reader to report (strict)
            # or replace; its offset is only exact when the reader meets it.
            return EncodingGuess("utf-8", 1.0)
        # An ASCII head says nothing: let the tail's non-ASCII bytes decide.
        return _legacy(tail, "the last bytes")

    text = head.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ch > "\x7f") - bad
    if good >= 2 * bad:
        offset = error.start
        if decode_errors != "replace":
            raise DetectionError(
                f"not valid UTF-8: byte 0x{head[offset]:02x} at offset {offset} cannot be decoded "
                f"({bad} such bytes in the first {len(head)} bytes)",
                details={"offset": offset},
            )
        return EncodingGuess(
            "utf-8",
            round(good / (good + bad), 3),
            warnings=(f"{bad} undecodable bytes in the first {len(head)} bytes replaced by U+FFFD",),
        )
    return _legacy(head, "the sample")


def _legacy(data: bytes, where: str) -> EncodingGuess:
    if b"\r" in data and b"\n" not in data:
        return EncodingGuess(
            "mac-roman",
            0.6,
            warnings=("CR-only line breaks and non-UTF-8 bytes: Mac Roman (Excel's CSV (Macintosh))",),
        )
    high = len(data) - len(data.translate(None, _HIGH))
    fallback = "latin_1" if _CP1252_UNDEFINED.search(data) else "cp1252"
    if high < MIN_STATISTICAL_BYTES:
        return EncodingGuess(
            _python_name(fallback),
            0.5,
            warnings=(f"only {high} non-ASCII bytes in {where}: assumed {_python_name(fallback)}",),
        )
    from charset_normalizer import from_bytes

    lines = b"".join(m.group(0) for m in _NON_ASCII_LINE.finditer(data[: 4 * _STATISTICS_BYTES]))
    result = from_bytes(lines[:_STATISTICS_BYTES], cp_isolation=list(ALLOWED_ENCODINGS)).best()
    if result is None:
        log.info("charset_normalizer_inconclusive", fallback=fallback)
        return EncodingGuess(
            _python_name(fallback),
            0.3,
            warnings=(f"encoding not recognised: assumed {_python_name(fallback)}",),
        )
    encoding = result.encoding
    confidence = round(max(0.0, 1.0 - float(result.chaos)), 3)
    if encoding in _WESTERN:
        encoding = fallback
    elif not _decodes(data, encoding):
        return EncodingGuess(
            _python_name(fallback),
            0.3,
            warnings=(f"{encoding} does not decode {where}: assumed {_python_name(fallback)}",),
        )
    return EncodingGuess(_python_name(encoding), confidence)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        decode_sample(data, encoding, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _python_name(encoding: str) -> str:
    """The codec's canonical Python spelling (``latin_1`` -> ``latin-1``)."""
    name = codecs.lookup(encoding).name
    return {"iso8859-1": "latin-1", "mbcs": "cp1252"}.get(name, name)
