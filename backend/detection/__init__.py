"""Detection: what a file's bytes mean, from a bounded sample of it.

`detect` reads at most ``sample_bytes`` from the start of the file and, when the file is larger,
its last 64 KiB (trailer rows live there); it never reads the whole file. Stages:
encoding (`encoding.py`) -> dialect (`dialect.py`) -> table position, trailer and second table
(`layout.py`) -> header rows (`header.py`) -> column types (`types.py`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
from backend.detection.encoding import decode_sample, detect_encoding
from backend.detection.header import count_header_rows, header_names
from backend.detection.layout import count_trailer_rows, second_table_line, table_start
from backend.detection.types import TypeTracker
from backend.errors import DetectionError, EmptyFileError
from backend.files import open_regular_file
from backend.models import ColumnKind, ColumnType, Detection, TypePolicy

__all__ = ["DELIMITER_NAMES", "HAS_SKIPINITIALSPACE", "TAIL_BYTES", "detect"]

log = structlog.get_logger(__name__)

#: Bytes read from the end of a file larger than the sample, to find its trailer.
TAIL_BYTES = 64 * 1024
#: Whether this models.Detection can say "drop the spaces after each delimiter".
HAS_SKIPINITIALSPACE = "skipinitialspace" in Detection.__dataclass_fields__
#: Below this share of rows with the table's width, the dialect is called inconclusive.
MIN_CONSISTENCY = 0.5


def detect(
    path: Path, settings: Settings, *, sample_bytes: int | None = None, source: IO[bytes] | None = None
) -> Detection:
    """Detect encoding, dialect, layout, header and column types of a delimited text file.

    Args:
        path: the file.
        settings: uses decode_errors, sample_bytes, date_order and type_policy.
        sample_bytes: bytes to read from the start (default ``settings.sample_bytes``).
        source: the file already opened by the caller; read with pread so its position stays at
            the start (the loader passes the file it will load, so both see the same bytes).

    Raises:
        EmptyFileError: the file has no bytes, or neither a header nor rows.
        DetectionError: binary content, undecodable sample (strict mode), no line break in the
            sample, or no consistent dialect.
    """
    limit = sample_bytes or settings.sample_bytes
    handle = source if source is not None else open_regular_file(Path(path), buffering=0)
    try:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        head = os.pread(fd, limit, 0)
        complete = len(head) < limit or size <= len(head)
        tail = b""
        if not complete:
            start = max(len(head), size - TAIL_BYTES)
            tail = os.pread(fd, TAIL_BYTES, start)
    finally:
        if source is None:
            handle.close()
    if not head:
        raise EmptyFileError("empty file (0 bytes)", path=path)
    try:
        return _detect(head, tail, size, complete, settings, path)
    except (DetectionError, EmptyFileError) as exc:
        if exc.path is None:
            exc.path = path
        raise


def _detect(head: bytes, tail: bytes, size: int, complete: bool, settings: Settings, path: Path) -> Detection:
    warnings: list[str] = []
    guess = detect_encoding(head, tail, complete=complete, decode_errors=settings.decode_errors)
    warnings.extend(guess.warnings)
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

    guess_dialect = detect_dialect(text, complete=complete)
    dialect = guess_dialect.dialect
    width = guess_dialect.width
    lines = split_lines(text)
    records = parse_records(lines, dialect)
    if not complete and len(records) > 1:
        records = records[:-1]  # may be cut in the middle of a quoted field
    start = table_start(records, width) if records else 0
    skip_rows = records[start].line - 1 if records else 0
    if skip_rows:
        warnings.append(f"{skip_rows} preamble line{'s' if skip_rows > 1 else ''} above the table skipped")
    table = [r for r in records[start:] if not r.blank]

    if complete:
        last = [r.values for r in table[-5:]]
    else:
        last = _tail_records(tail, guess.encoding, bom, size, dialect)
    trailer_rows = count_trailer_rows(last, width)
    if trailer_rows:
        shown = " | ".join(dialect.delimiter.join(v) for v in last[-trailer_rows:])
        warnings.append(
            f"{trailer_rows} trailer row{'s' if trailer_rows > 1 else ''} ignored: {shown[:80]!r}"
        )
        if complete:
            table = table[:-trailer_rows]

    consistency = sum(1 for r in table if len(r.values) == width) / len(table) if table else 1.0
    if width >= 2 and consistency < MIN_CONSISTENCY:
        name = DELIMITER_NAMES.get(dialect.delimiter, dialect.delimiter)
        raise DetectionError(
            f"inconclusive dialect: with delimiter {name!r} "
            f"only {consistency:.0%} of {len(table)} sample rows have {width} fields"
        )
    rows = [r.values for r in table]
    header_rows = count_header_rows(rows, width)
    headers = header_names(rows[:header_rows], width)
    data = table[header_rows:]
    if header_rows == 0 and not rows:
        raise EmptyFileError("no header and no rows")

    first_data_line = data[0].line if data else records[-1].end + 1
    second = second_table_line(
        [r for r in records[start:] if r.line >= first_data_line],
        width,
        rows[0] if header_rows == 1 else None,
    )
    if second is not None and data:
        warnings.append(f"a second table seems to start at line {second[0]} ({second[1]} columns)")
    if consistency < 0.9 and width >= 2:
        warnings.append(f"only {consistency:.0%} of the sample rows have {width} fields")
    if dialect.skipinitialspace:
        warnings.append(
            "spaces after each delimiter are padding and are dropped"
            if HAS_SKIPINITIALSPACE
            else "values keep the space that follows each delimiter (padding)"
        )

    column_types = _column_types(data, len(headers), settings)
    estimated = len(data) if complete else _estimate_rows(len(data), size - bom, used)
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
        skip_rows=skip_rows,
        header_rows=header_rows,
        headers=headers,
        column_types=column_types,
        estimated_rows=estimated,
        sample_rows=len(data),
        trailer_rows=trailer_rows,
        warnings=tuple(warnings),
    )


def _make_detection(*, dialect: Dialect, **fields: object) -> Detection:
    values: dict[str, object] = {
        "delimiter": dialect.delimiter,
        "quotechar": dialect.quotechar,
        "escapechar": dialect.escapechar,
        "doublequote": dialect.doublequote,
        **fields,
    }
    # Detection gains `skipinitialspace` in a later models.py; until then padding stays in values.
    if HAS_SKIPINITIALSPACE:
        values["skipinitialspace"] = dialect.skipinitialspace
    return Detection(**values)  # type: ignore[arg-type]


def _column_types(data: Sequence[SampleRecord], count: int, settings: Settings) -> tuple[ColumnType, ...]:
    tracker = TypeTracker(count, date_order=settings.date_order)
    for record in data:
        tracker.observe(record.values)
    types = tracker.result()
    if settings.type_policy is TypePolicy.INFER:
        return types
    return tuple(ColumnType(ColumnKind.TEXT, length=t.length) for t in types)


def _estimate_rows(sample_rows: int, data_bytes: int, used_bytes: int) -> int:
    if used_bytes <= 0:
        return sample_rows
    return round(sample_rows * data_bytes / used_bytes)


def _tail_records(tail: bytes, encoding: str, bom: int, size: int, dialect: Dialect) -> list[list[str]]:
    """The last non-blank records of a file larger than the sample, from its tail bytes."""
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
    return [r.values for r in records if not r.blank][-5:]
