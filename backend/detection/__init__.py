"""Detection: what a file's bytes mean, from a bounded sample of it.

`detect` reads at most ``sample_bytes`` from the start of the file and, when the file is larger,
its last 64 KiB (trailer rows live there); it never reads the whole file. Stages:
encoding (`encoding.py`) -> dialect (`dialect.py`) -> the table in the records: preamble
(`layout.py`), header rows (`header.py`), width (`columns.py`), trailer (`trailer.py`),
stacked tables (`blocks.py`), put together in `table.py` -> column types (`types.py`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from backend.config import Settings
from backend.detection.dialect import (
    DELIMITER_NAMES,
    Dialect,
    SampleRecord,
    detect_dialect,
    parse_records,
    split_lines,
)
from backend.detection.encoding import EncodingGuess, decode_sample, detect_encoding
from backend.detection.layout import delimiter_hint
from backend.detection.table import MIN_CONSISTENCY, STACKED_CHOICES, Options, Shape, analyse
from backend.detection.types import TypeTracker
from backend.errors import DetectionError, EmptyFileError
from backend.files import open_regular_file, read_at
from backend.models import ColumnKind, ColumnType, Detection, SkippedLine, TypePolicy

__all__ = [
    "DELIMITER_NAMES",
    "MIN_CONSISTENCY",
    "STACKED_CHOICES",
    "TAIL_BYTES",
    "detect",
]

log = structlog.get_logger(__name__)

#: Bytes read from the end of a file larger than the sample, to find its trailer.
TAIL_BYTES = 64 * 1024
#: Records of the tail that the trailer is looked for in.
TAIL_RECORDS = 60
#: Whether this models.Detection can say "drop the spaces after each delimiter".


def detect(
    path: Path,
    settings: Settings,
    *,
    sample_bytes: int | None = None,
    source: IO[bytes] | None = None,
    header: bool | None = None,
    trailer_detection: bool = True,
    stacked_tables: str | None = None,
) -> Detection:
    """Detect encoding, dialect, layout, header and column types of a delimited text file.

    Args:
        path: the file.
        settings: uses decode_errors, sample_bytes, date_order and type_policy.
        sample_bytes: bytes to read from the start (default ``settings.sample_bytes``).
        source: the file already opened by the caller; read with `read_at` (pread) so its
            position stays at the start (the loader passes the file it will load, so both see
            the same bytes).
        header: True: the table's first row is its header, whatever it looks like; False: the
            file has no header; None: detect it (``load --header/--no-header``, table policy).
        trailer_detection: False: no record at the end is ever dropped as a trailer.
        stacked_tables: ``"first"`` or ``"largest"``: in a file of several stacked tables, read
            that one (``Detection.blocks`` lists them all); None: such a file is refused.

    Raises:
        EmptyFileError: the file has no bytes, or neither a header nor rows.
        DetectionError: binary content, undecodable sample (strict mode), no line break in the
            sample, stacked tables (without `stacked_tables`), or no consistent dialect.
    """
    if stacked_tables is not None and stacked_tables not in STACKED_CHOICES:
        raise ValueError(f"stacked_tables must be one of {STACKED_CHOICES}, not {stacked_tables!r}")
    limit = sample_bytes or settings.sample_bytes
    handle = source if source is not None else open_regular_file(Path(path), buffering=0)
    try:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        head = read_at(fd, limit, 0)
        complete = len(head) < limit or size <= len(head)
        tail = b""
        if not complete:
            start = max(len(head), size - TAIL_BYTES)
            tail = read_at(fd, TAIL_BYTES, start)
    finally:
        if source is None:
            handle.close()
    if not head:
        raise EmptyFileError("empty file (0 bytes)", path=path)
    options = Options(header=header, trailer_detection=trailer_detection, stacked_tables=stacked_tables)
    try:
        return _detect(head, tail, size, complete, settings, options)
    except (DetectionError, EmptyFileError) as exc:
        if exc.path is None:
            exc.path = path
        raise


@dataclass(frozen=True, slots=True)
class _Sample:
    text: str
    guess: EncodingGuess
    used: int  # bytes the text came from


def _decode(head: bytes, tail: bytes, complete: bool, settings: Settings) -> _Sample:
    guess = detect_encoding(head, tail, complete=complete, decode_errors=settings.decode_errors)
    bom = len(guess.bom)
    try:
        text, used = decode_sample(head[bom:], guess.encoding, final=complete, errors=settings.decode_errors)
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        raise DetectionError(
            f"bytes at offset {offset} cannot be decoded as {guess.encoding}", details={"offset": offset}
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not complete:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut < 0:
            raise DetectionError(f"no line break in the first {len(head)} bytes: not a delimited text file?")
        text = text[: cut + 1]
    if not text.strip():
        raise EmptyFileError("no header and no rows (only blank lines)")
    return _Sample(text, guess, used)


def _detect(
    head: bytes, tail: bytes, size: int, complete: bool, settings: Settings, options: Options
) -> Detection:
    sample = _decode(head, tail, complete, settings)
    text, guess = sample.text, sample.guess
    hint = delimiter_hint(text)
    lines = split_lines(text)
    hinted: tuple[SkippedLine, ...] = ()
    if hint is not None:
        hinted = (SkippedLine(1, 1, f"Excel delimiter hint (sep={hint})", lines[0].rstrip("\r\n")),)
    guess_dialect = detect_dialect("".join(lines[1:]) if hint else text, complete=complete, delimiter=hint)
    dialect = guess_dialect.dialect
    records = parse_records(lines, dialect)
    if not complete and len(records) > 1:
        records = records[:-1]  # may be cut in the middle of a quoted field
    tail_records = None if complete else _tail_records(tail, guess.encoding, len(guess.bom), size, dialect)
    shape = analyse(
        records,
        guess_dialect.width,
        delimiter=dialect.delimiter,
        complete=complete,
        tail=tail_records,
        options=options,
        first=1 if hint else 0,
        skipped=hinted,
    )
    warnings = [*guess.warnings, *shape.warnings]
    if dialect.skipinitialspace:
        warnings.append("spaces after each delimiter are padding and are dropped")
    width = shape.fit.width
    column_types = _column_types(shape.data, width, settings)
    bom = len(guess.bom)
    estimated = (
        len(shape.data) if complete and shape.last_line is None else _estimate(shape, size - bom, sample.used)
    )
    log.debug(
        "detected",
        encoding=guess.encoding,
        dialect=repr(dialect),
        width=width,
        scores=guess_dialect.scores,
        clevercsv=repr(guess_dialect.clevercsv),
    )
    return _make_detection(
        encoding=guess.encoding,
        encoding_confidence=guess.confidence,
        bom=bool(guess.bom),
        dialect=dialect,
        line_terminator=guess_dialect.line_terminator,
        skip_rows=shape.skip_rows,
        header_rows=shape.header_rows,
        headers=shape.headers,
        column_types=column_types,
        estimated_rows=estimated,
        sample_rows=len(shape.data),
        trailer_rows=len(shape.trailer),
        warnings=tuple(warnings),
        skipped_lines=shape.skipped,
        trailer_lines=shape.trailer,
        dropped_trailing_columns=shape.fit.dropped,
        unnamed_columns=shape.fit.unnamed,
        header_forced=options.header is not None,
        blank_lines_are_values=shape.blank_values,
        blocks=shape.blocks,
        block=shape.block,
        last_line=shape.last_line,
    )


def _estimate(shape: Shape, data_bytes: int, used_bytes: int) -> int:
    """Data rows in the file (or in the chosen block, which ends inside the sample)."""
    if shape.last_line is not None:
        return len(shape.data)
    return _estimate_rows(len(shape.data), data_bytes, used_bytes)


def _make_detection(*, dialect: Dialect, **fields: object) -> Detection:
    values: dict[str, object] = {
        "delimiter": dialect.delimiter,
        "quotechar": dialect.quotechar,
        "escapechar": dialect.escapechar,
        "doublequote": dialect.doublequote,
        "skipinitialspace": dialect.skipinitialspace,
        **fields,
    }
    return Detection(**values)  # type: ignore[arg-type]


def _column_types(data: Sequence[list[str]], count: int, settings: Settings) -> tuple[ColumnType, ...]:
    tracker = TypeTracker(count, date_order=settings.date_order)
    for values in data:
        tracker.observe(values)
    types = tracker.result()
    if settings.type_policy is TypePolicy.INFER:
        return types
    return tuple(ColumnType(ColumnKind.TEXT, length=t.length) for t in types)


def _estimate_rows(sample_rows: int, data_bytes: int, used_bytes: int) -> int:
    if used_bytes <= 0:
        return sample_rows
    return round(sample_rows * data_bytes / used_bytes)


def _tail_records(tail: bytes, encoding: str, bom: int, size: int, dialect: Dialect) -> list[SampleRecord]:
    """The last non-blank records of a file larger than the sample, from its tail bytes.

    Their line numbers count from the tail's first whole line, not from the file's start.
    """
    if not tail:
        return []
    start = size - len(tail)
    unit = 4 if encoding.startswith("utf-32") else 2 if encoding.startswith("utf-16") else 1
    data = tail[(unit - (start - bom) % unit) % unit :] if unit > 1 else tail
    text = data.decode(encoding.replace("-sig", ""), errors="replace")
    # The tail starts anywhere: drop its first (partial) line.
    breaks = [i for i in (text.find("\n"), text.find("\r")) if i >= 0]
    if not breaks:
        return []
    text = text[min(breaks) + 1 :].lstrip("\n")
    records = parse_records(split_lines(text), dialect)
    return [r for r in records if not r.blank][-TAIL_RECORDS:]
