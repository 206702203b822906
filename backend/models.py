"""Plain, immutable data handed from one stage of a file's journey to the next.

ReadyFile (daemon.stability) -> Detection -> TablePlan -> StageResult -> LoadResult -> Outcome (daemon.settle)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


class LoadType(str, Enum):
    """How a file's rows meet the table's current rows."""

    FULLLOAD = "fullload"
    APPEND = "append"


class RaggedPolicy(str, Enum):
    """What to do with a row whose field count differs from the header's."""

    ERROR = "error"
    REPAIR = "repair"
    SKIP = "skip"


class TypePolicy(str, Enum):
    """Whether target columns are all text or typed from the data."""

    TEXT = "text"
    INFER = "infer"


class ColumnKind(str, Enum):
    """Logical column types; each dialect maps them to its own SQL types."""

    TEXT = "text"
    INTEGER = "integer"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"


@dataclass(frozen=True, slots=True)
class ColumnType:
    """An inferred or declared column type.

    `length` is the longest value in characters (text), `precision`/`scale` describe decimals,
    `date_format` is the strptime format that parses every value of a date/datetime column (and
    renders it back exactly), `true_text`/`false_text` are how a boolean column spells its two
    values in the file. Together they say how every stored value is written back as text, so
    that `export` gives the file's cells exactly (see `backend.load.convert`).
    """

    kind: ColumnKind = ColumnKind.TEXT
    length: int = 0
    precision: int = 0
    scale: int = 0
    date_format: str | None = None
    true_text: str | None = None
    false_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "length": self.length,
            "precision": self.precision,
            "scale": self.scale,
            "date_format": self.date_format,
        }
        if self.kind is ColumnKind.BOOLEAN:
            out["true_text"], out["false_text"] = self.true_text, self.false_text
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnType:
        """The inverse of `to_dict` (unknown keys are ignored, missing ones take their defaults)."""
        return cls(
            kind=ColumnKind(data.get("kind", "text")),
            length=int(data.get("length") or 0),
            precision=int(data.get("precision") or 0),
            scale=int(data.get("scale") or 0),
            date_format=data.get("date_format"),
            true_text=data.get("true_text"),
            false_text=data.get("false_text"),
        )


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """Lines of a file that are not table rows: a title above the header, a trailer below the data.

    `line`..`end` are 1-based physical lines; 0 when unknown (a trailer found in the tail of a
    file larger than the sample). `text` is the record as read, cut to 80 characters.
    """

    line: int
    end: int
    reason: str
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "end": self.end, "reason": self.reason, "text": self.text}


@dataclass(frozen=True, slots=True)
class TableBlock:
    """One of several tables stacked in a file: its lines, width and header line.

    `last_line` is None when the block runs past the end of the sample (it may go on to the
    end of the file). `rows` counts the block's data rows in the sample.
    """

    first_line: int
    last_line: int | None
    width: int
    header_line: int | None
    rows: int

    def describe(self) -> str:
        end = str(self.last_line) if self.last_line is not None else "end"
        return f"lines {self.first_line}-{end} ({self.width} columns)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_line": self.first_line,
            "last_line": self.last_line,
            "width": self.width,
            "header_line": self.header_line,
            "rows": self.rows,
        }


@dataclass(frozen=True, slots=True)
class Detection:
    """Everything inferred about a file's format from a bounded sample.

    Attributes:
        encoding: Python codec name used to decode the file (``utf-8-sig`` when a UTF-8 BOM is present).
        encoding_confidence: 0..1; 1.0 for a BOM or a sample that is valid UTF-8.
        bom: the file starts with a byte order mark.
        delimiter: the field separator (a single character).
        quotechar: the quote character, or None when fields are never quoted.
        escapechar: the escape character (e.g. backslash), or None.
        doublequote: a doubled quote inside a quoted field stands for one quote.
        line_terminator: "\\n", "\\r\\n", "\\r" or "mixed".
        skip_rows: physical records (preamble lines) to skip before the header.
        header_rows: records that form the header (0: no header; names are column_1..N).
        headers: original column names as written (multi-row headers joined with a space).
        column_types: per-column types inferred from the sample (TEXT when unsure).
        estimated_rows: data rows, estimated from the sample's bytes per row.
        sample_rows: number of data rows in the sample.
        warnings: things an operator may want to know (e.g. "2 trailer rows ignored").
        trailer_rows: number of trailing records recognised as a trailer (e.g. ``Total,123``).
        skipped_lines: the lines above the header that were skipped, each with its reason (a
            ``sep=`` hint, a title, a blank or delimiter-only line, metadata of another width).
        trailer_lines: the records dropped as the trailer, each with its reason.
        dropped_trailing_columns: a row with this many more fields than ``headers``, all of
            them empty, is a row with trailing delimiters: the reader drops those empty fields.
            A row whose surplus fields hold a value keeps them (the ragged-rows policy decides).
        unnamed_columns: columns the data has beyond the header's names (the header lost a
            delimiter or lacks names); their ``headers`` entries are empty strings.
        header_forced: ``header_rows`` was set by the caller (``detect(header=...)``), not found.
        blank_lines_are_values: a one-column file: a blank line between rows is a row holding
            one empty value (blank lines at the very end are not rows).
        blocks: the tables stacked in the file (two or more), when the caller chose one of
            them with ``detect(stacked_tables=...)``; empty otherwise.
        block: index in ``blocks`` of the table the reader reads.
        last_line: the reader yields no record that starts after this physical line (the
            chosen block ends there); None: read to the end of the file.
    """

    encoding: str
    delimiter: str
    quotechar: str | None = '"'
    escapechar: str | None = None
    doublequote: bool = True
    #: Spaces right after a delimiter are padding, not data (``a, b``).
    skipinitialspace: bool = False
    line_terminator: str = "\n"
    encoding_confidence: float = 1.0
    bom: bool = False
    skip_rows: int = 0
    header_rows: int = 1
    headers: tuple[str, ...] = ()
    column_types: tuple[ColumnType, ...] = ()
    estimated_rows: int | None = None
    sample_rows: int = 0
    trailer_rows: int = 0
    warnings: tuple[str, ...] = ()
    skipped_lines: tuple[SkippedLine, ...] = ()
    trailer_lines: tuple[SkippedLine, ...] = ()
    dropped_trailing_columns: int = 0
    unnamed_columns: int = 0
    header_forced: bool = False
    blank_lines_are_values: bool = False
    blocks: tuple[TableBlock, ...] = ()
    block: int | None = None
    last_line: int | None = None
    #: What the bytes are (issue 17): ``csv``, ``xlsx``, ``xlsm``, ``xls``, ``json``, ``ndjson``
    #: or ``parquet``, decided by content (`backend.load.readers.sniff`), not by the name.
    format: str = "csv"
    #: The compression layer around the data (``gzip``, ``zip``, ...), or None.
    compression: str | None = None
    #: Why the content contradicts the file name (the content wins), or None.
    format_mismatch: str | None = None
    #: A workbook's sheet that is loaded, and all its worksheet names.
    sheet: str | None = None
    sheets: tuple[str, ...] = ()
    #: Column types the format itself declares (a Parquet schema), in column order; None for a
    #: column whose stored type has no exact counterpart. TYPE_POLICY=infer prefers them to the
    #: types inferred from the values (`backend.detection.types.prefer_declared`). Empty: none.
    declared_types: tuple[ColumnType | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoding": self.encoding,
            "encoding_confidence": round(self.encoding_confidence, 3),
            "bom": self.bom,
            "delimiter": self.delimiter,
            "quotechar": self.quotechar,
            "escapechar": self.escapechar,
            "doublequote": self.doublequote,
            "skipinitialspace": self.skipinitialspace,
            "line_terminator": self.line_terminator,
            "skip_rows": self.skip_rows,
            "header_rows": self.header_rows,
            "trailer_rows": self.trailer_rows,
            "headers": list(self.headers),
            "column_types": [t.to_dict() for t in self.column_types],
            "estimated_rows": self.estimated_rows,
            "sample_rows": self.sample_rows,
            "warnings": list(self.warnings),
            "skipped_lines": [s.to_dict() for s in self.skipped_lines],
            "trailer_lines": [s.to_dict() for s in self.trailer_lines],
            "dropped_trailing_columns": self.dropped_trailing_columns,
            "unnamed_columns": self.unnamed_columns,
            "header_forced": self.header_forced,
            "blank_lines_are_values": self.blank_lines_are_values,
            "blocks": [b.to_dict() for b in self.blocks],
            "block": self.block,
            "last_line": self.last_line,
            "format": self.format,
            "compression": self.compression,
            "format_mismatch": self.format_mismatch,
            "sheet": self.sheet,
            "sheets": list(self.sheets),
            "declared_types": [t.to_dict() if t is not None else None for t in self.declared_types],
        }


@dataclass(frozen=True, slots=True)
class Record:
    """One data row as read from the file.

    `line` is the 1-based physical line where the record starts; `number` is its 1-based
    position among the data rows (the value stored in the `_row_number` metadata column).
    """

    number: int
    line: int
    values: list[str]


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """What an operator (or a dropoff folder) asks for one file."""

    path: Path
    load_type: LoadType = LoadType.FULLLOAD
    is_reference: bool = True
    table: str | None = None
    ragged_rows: RaggedPolicy | None = None
    type_policy: TypePolicy | None = None
    allow_empty_fullload: bool = False
    #: Tracking id already claimed by the daemon, if any.
    tracking_id: int | None = None
    sha256: str | None = None
    #: A fullload replaces the table's rows; False keeps them as a bkp version only, the live
    #: table untouched (an older file that arrived after a newer one: `daemon.order`).
    make_current: bool = True
    #: ``load --header`` (True) / ``--no-header`` (False); None: the table's policy, else detect.
    header: bool | None = None


@dataclass(frozen=True, slots=True)
class TablePlan:
    """Where and how the rows go: the normalised target and its columns."""

    table: str
    columns: tuple[str, ...]
    headers: tuple[str, ...]
    column_types: tuple[ColumnType, ...]
    exists: bool
    #: How the existing table stores each of its data columns (empty for a new table), with the
    #: formats its values are written back in.
    stored: dict[str, ColumnType] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StageResult:
    """What streaming the file into the staging table produced."""

    rows_read: int
    rows_staged: int
    rows_rejected: int
    batches: int
    repaired_lines: tuple[int, ...] = ()
    rejected_lines: tuple[int, ...] = ()
    column_types: tuple[ColumnType, ...] = ()
    #: The longest value and the empty cells of every written column, as the file wrote them
    #: (`load.measure`); empty when the rows were not counted on their way.
    longest: tuple[int, ...] = ()
    empty_counts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadResult:
    """A committed load."""

    tracking_id: int
    table: str
    load_type: LoadType
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    batches: int
    seconds: float
    backup_version: int | None
    detection: Detection
    status: str = "loaded"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: Records of the other stacked tables written to `rejects_path` (``stacked_tables:``).
    block_records_rejected: int = 0
    #: The rejects file this load wrote (None: it wrote none).
    rejects_path: Path | None = None
