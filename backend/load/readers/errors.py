"""Refusals specific to the non-CSV readers, re-exported from the shared error tree.

They are defined in ``backend/errors.py`` (every raise comes from there), under the family
`FormatError`, itself a ``FileRejectedError``: the pipeline sends the file to error/ with the
message as the reason. Every message names what is wrong and what the operator can do about it.
"""

from __future__ import annotations

from backend.errors import (
    ArchiveLayoutError,
    DamagedFileError,
    DecompressionBombError,
    EncryptedFileError,
    FormatError,
    JsonShapeError,
    SheetNotFoundError,
    TruncatedFileError,
    UnsupportedColumnError,
    UnsupportedFormatError,
)

__all__ = [
    "ArchiveLayoutError",
    "DamagedFileError",
    "DecompressionBombError",
    "EncryptedFileError",
    "FormatError",
    "JsonShapeError",
    "SheetNotFoundError",
    "TruncatedFileError",
    "UnsupportedColumnError",
    "UnsupportedFormatError",
]
