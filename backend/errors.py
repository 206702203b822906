"""The exception tree shared by every stage.

Terminal errors (`FileRejectedError`) send a file to error/ with the message as the reason;
retryable errors (`RetryableError`) leave the file where it is so that a later attempt can
succeed. Messages are written for the operator who has to act on them: they name the file,
the reason and, where it applies, the row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.masking import scrub


class IngestError(Exception):
    """Base of every error the product raises on purpose."""

    #: Short machine-readable name of the stage that failed (detect, stage, publish, ...).
    stage: str = "load"

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        stage: str | None = None,
        rows: tuple[int, ...] = (),
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        if stage is not None:
            self.stage = stage
        #: Line numbers of offending rows, when the error is about rows.
        self.rows = tuple(rows)
        self.details = dict(details or {})

    def __str__(self) -> str:
        # Every way out of the process (CLI, logs, sidecars, tracking rows) prints errors through
        # here: a driver message quoting a URL or a known password never leaves unmasked.
        if self.path is not None and str(self.path.name) not in self.message:
            return scrub(f"{self.path.name}: {self.message}")
        return scrub(self.message)


class ConfigError(IngestError):
    """A setting is missing or invalid; raised at start-up only."""

    stage = "config"


class FileRejectedError(IngestError):
    """The file cannot be loaded as it is; it goes to error/ and nothing is published."""


class EmptyFileError(FileRejectedError):
    """The file has no bytes, or no data rows where data rows are required."""

    stage = "detect"


class DetectionError(FileRejectedError):
    """Encoding, dialect or header could not be determined or the bytes do not decode."""

    stage = "detect"


class HeaderError(FileRejectedError):
    """Column names are empty or clash after normalisation."""

    stage = "plan"


class SchemaMismatchError(FileRejectedError):
    """The file's columns do not match the existing table."""

    stage = "plan"


class RowError(FileRejectedError):
    """A row violates the file's shape, a type or a constraint."""

    stage = "stage"


class FormatError(FileRejectedError):
    """Family of refusals of a file beyond plain CSV (issue 17): its format, packaging or bytes."""

    stage = "read"


class UnsupportedFormatError(FormatError, DetectionError):
    """The content is not a format we load (or not in this combination, e.g. xlsx inside gzip)."""

    stage = "detect"


class EncryptedFileError(FormatError):
    """The file (or a member of the archive) is password protected."""

    stage = "detect"


class DecompressionBombError(FormatError):
    """Decompressing produced more bytes, or a higher ratio, than the configured limits allow."""


class TruncatedFileError(FormatError):
    """The compressed stream or file ends before its end marker: the copy is incomplete."""


class DamagedFileError(FormatError):
    """The bytes do not decode in the format they claim to be (bad checksum, invalid data)."""


class ArchiveLayoutError(FormatError):
    """A zip holds no data file, several data files, or member names that escape the folder."""

    stage = "detect"


class SheetNotFoundError(FormatError):
    """The requested worksheet does not exist in the workbook."""

    stage = "detect"


class UnsupportedColumnError(FormatError):
    """A column's type has no exact text form (binary, lists, maps) and is refused."""


class JsonShapeError(FormatError, RowError):
    """A JSON document is not an array of objects, or an NDJSON line is not an object."""

    stage = "read"


class ValidationFailedError(FileRejectedError):
    """A data quality rule refused the staged data."""

    stage = "validate"


class CancelledError(FileRejectedError):
    """An operator cancelled the load; it was rolled back."""

    stage = "cancel"


class RetryableError(IngestError):
    """A transient condition: the file stays where it is and is tried again later."""


class FileBusyError(RetryableError):
    """The file is still being written or is locked by another process."""

    stage = "stabilize"


class FileChangedError(RetryableError):
    """The file changed after it was claimed; the load is abandoned and retried later."""

    stage = "claim"


class ShutdownError(RetryableError):
    """The daemon is stopping; the load was rolled back and the file stays for the next start."""

    stage = "shutdown"


class DatabaseUnavailableError(RetryableError):
    """The database is unreachable, timed out or reported a deadlock."""

    stage = "database"


class NotFoundError(IngestError):
    """An operator asked for a table, version or load that does not exist."""

    stage = "lookup"


class ClaimConflictError(IngestError):
    """Another attempt already holds the claim key (same content, same table)."""

    stage = "claim"


class InjectedFault(RuntimeError):
    """Raised at a fault point named in REFDATA_FAULTS (tests only; see `backend.faults`).

    Deliberately no IngestError: an injected fault must look like the unexpected failure it stands for.
    """


class ArrowRefusedError(Exception):
    """The Arrow reader cannot read a file exactly as the Python reader would: the load reads it
    again with that one. Internal to the load (never reaches an operator), hence no IngestError."""
