"""Refusals specific to the non-CSV readers, as subclasses of the shared error tree.

They live here until the lead moves them into ``backend/errors.py`` (issue 17); each one is a
``FileRejectedError``, so the pipeline already sends the file to error/ with the message as the
reason. Every message names what is wrong and what the operator can do about it.
"""

from __future__ import annotations

from backend.errors import DetectionError, FileRejectedError, RowError


class UnsupportedFormatError(DetectionError):
    """The content is not a format we load (or not in this combination, e.g. xlsx inside gzip)."""


class EncryptedFileError(FileRejectedError):
    """The file (or a member of the archive) is password protected."""

    stage = "detect"


class DecompressionBombError(FileRejectedError):
    """Decompressing produced more bytes, or a higher ratio, than the configured limits allow."""

    stage = "read"


class TruncatedFileError(FileRejectedError):
    """The compressed stream or file ends before its end marker: the copy is incomplete."""

    stage = "read"


class DamagedFileError(FileRejectedError):
    """The bytes do not decode in the format they claim to be (bad checksum, invalid data)."""

    stage = "read"


class ArchiveLayoutError(FileRejectedError):
    """A zip holds no data file, several data files, or member names that escape the folder."""

    stage = "detect"


class SheetNotFoundError(FileRejectedError):
    """The requested worksheet does not exist in the workbook."""

    stage = "detect"


class UnsupportedColumnError(FileRejectedError):
    """A column's type has no exact text form (binary, lists, maps) and is refused."""

    stage = "read"


class JsonShapeError(RowError):
    """A JSON document is not an array of objects, or an NDJSON line is not an object."""
