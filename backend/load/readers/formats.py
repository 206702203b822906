"""The formats and compressions the readers know, their name endings and their magic bytes."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    """What the bytes are, once any compression is taken off."""

    CSV = "csv"  # any delimited text: the CSV detection decides encoding and dialect
    XLSX = "xlsx"
    XLSM = "xlsm"
    XLS = "xls"
    JSON = "json"  # one top-level array of objects
    NDJSON = "ndjson"  # one object per line
    PARQUET = "parquet"


class Compression(StrEnum):
    """A compression layer around one data file."""

    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZSTD = "zstd"
    ZIP = "zip"


#: Name endings (lower case) and the format they promise. Text endings all mean delimited text.
FORMAT_SUFFIXES: dict[str, Format] = {
    ".csv": Format.CSV,
    ".tsv": Format.CSV,
    ".tab": Format.CSV,
    ".psv": Format.CSV,
    ".txt": Format.CSV,
    ".dat": Format.CSV,
    ".xlsx": Format.XLSX,
    ".xlsm": Format.XLSM,
    ".xls": Format.XLS,
    ".json": Format.JSON,
    ".ndjson": Format.NDJSON,
    ".jsonl": Format.NDJSON,
    ".parquet": Format.PARQUET,
    ".pq": Format.PARQUET,
}

COMPRESSION_SUFFIXES: dict[str, Compression] = {
    ".gz": Compression.GZIP,
    ".gzip": Compression.GZIP,
    ".bz2": Compression.BZIP2,
    ".xz": Compression.XZ,
    ".zst": Compression.ZSTD,
    ".zstd": Compression.ZSTD,
    ".zip": Compression.ZIP,
}

#: Magic bytes of each compression's stream (a zip starts with its first local file header).
COMPRESSION_MAGIC: dict[Compression, bytes] = {
    Compression.GZIP: b"\x1f\x8b",
    Compression.BZIP2: b"BZh",
    Compression.XZ: b"\xfd7zXZ\x00",
    Compression.ZSTD: b"\x28\xb5\x2f\xfd",
    Compression.ZIP: b"PK\x03\x04",
}

#: Formats that can be read front to back from a decompressing stream. Workbooks and Parquet
#: need random access (a zip directory, a footer) and are compressed inside already.
STREAMABLE = frozenset({Format.CSV, Format.JSON, Format.NDJSON})

#: Extensions that belong in ACCEPTED_EXTENSIONS for these readers (compressed variants follow).
ACCEPTED_SUFFIXES = tuple(FORMAT_SUFFIXES) + tuple(COMPRESSION_SUFFIXES)
