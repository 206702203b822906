"""Files beyond plain CSV as the load pipeline sees them: a `Detection` and a records factory.

`open_source` decides the format by content (`sniff.detect_format`: magic bytes first, the name
second). Plain delimited text is left to the CSV path (`backend.detection.detect` and
`csv_python.iter_runs`) exactly as before. Everything else gets a `FormatSource`:

- a `Detection` like the CSV one (the header is the reader's column names, the encoding UTF-8,
  the column types inferred from a sample of the values as for CSV), plus the format, the
  compression, the sheet and the name/content disagreement for the tracking row and the log;
- `records(stream)`: the same `Run`s and `Record`s `iter_runs` yields, from the format's reader.

Hashing (`check_unchanged`): the loader hands `records` the stream it hashes. Readers that need
random access or a second pass (workbooks, Parquet, zip, JSON) cannot read that stream, so
`records` first reads it to its end (the hash then covers the file's bytes as stored) and the
reader reads the same open file through a `FileView`. A compressed CSV is detected from its
decompressed sample (`textsample`) and read by the CSV reader from a decompressing stream.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import structlog

from backend.config import Settings
from backend.load.csv_python import Run, iter_runs
from backend.load.readers.compressed import open_decompressed, reopen_decompressed
from backend.load.readers.formats import FORMAT_SUFFIXES, Compression, Format
from backend.load.readers.limits import DecompressionLimits
from backend.load.readers.sniff import HEAD_BYTES, FormatGuess, detect_format, detect_inner
from backend.load.readers.view import drain, open_view
from backend.models import ColumnKind, ColumnType, Detection, Record, TypePolicy

if TYPE_CHECKING:
    # Imported by the readers that make batches: a plain CSV never needs pyarrow here.
    import pyarrow as pa

log = structlog.get_logger(__name__)

#: Rows read up front to find a sheet's title rows and header and to sample the types.
SAMPLE_ROWS = 1000
#: Signatures that mean "not plain text": compression, zip (xlsx), OLE (xls), Parquet.
_BINARY_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"PK\x03\x04", b"PAR1")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

RecordsFactory = Callable[[IO[bytes]], Iterable[Run | Record]]


@dataclass(frozen=True, slots=True)
class FormatSource:
    """How a non-CSV file loads: what it is and how to read its rows."""

    guess: FormatGuess
    detection: Detection
    records: RecordsFactory


def decompression_limits(settings: Settings) -> DecompressionLimits:
    """The bomb limits the settings ask for (MAX_DECOMPRESSED_BYTES, MAX_COMPRESSION_RATIO)."""
    return DecompressionLimits(
        max_output_bytes=settings.max_decompressed_bytes, max_ratio=settings.max_compression_ratio
    )


def sniff(path: Path, raw: IO[bytes]) -> FormatGuess | None:
    """What the file is, or None when it is plain text for the CSV path.

    Uncompressed text is CSV unless its name says JSON (or it has no name ending we know and
    starts like JSON): a CSV whose first cell starts with ``{`` stays a CSV.
    """
    from backend.files import read_at

    head = read_at(raw.fileno(), HEAD_BYTES, 0)
    binary = head.startswith(_BINARY_MAGIC) or head.startswith(_OLE_MAGIC)
    if not binary:
        named = FORMAT_SUFFIXES.get(Path(path.name.lower()).suffix)
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if named is Format.CSV or (named is None and start not in (b"[", b"{")):
            return None
    guess = detect_format(head, path.name)
    if guess.format is Format.CSV and guess.compression is None:
        return None
    return guess


def open_source(
    path: Path,
    raw: IO[bytes],
    settings: Settings,
    guess: FormatGuess,
    *,
    sheet: str | int | None,
    trailer_detection: bool = True,
) -> FormatSource:
    """Detect a non-CSV file and build its records factory.

    Args:
        path: the dropped file.
        raw: the file as the loader opened it (read here only through views).
        settings: batch size, decode errors, type policy, decompression limits.
        guess: `sniff`'s answer.
        sheet: the table's ``sheet:`` policy (workbooks only).
        trailer_detection: the table's ``trailer_detection:`` policy (workbooks: rows read as a
            CSV's records are; compressed CSV as plain CSV; JSON and Parquet have no rows that
            are not records).

    Raises:
        FileRejectedError: the subclasses in `readers.errors` (format, encryption, bombs, damage).
    """
    limits = decompression_limits(settings)
    if guess.compression is not None:
        guess = _confirm_inner(raw, guess, guess.compression, limits)
    if guess.mismatch:
        log.warning("format differs from its name", file=path.name, reason=guess.mismatch)
    if guess.format is Format.CSV and guess.compression is not None:
        return _compressed_csv(path, raw, settings, guess, guess.compression, limits, trailer_detection)
    if guess.format in (Format.XLSX, Format.XLSM, Format.XLS):
        from backend.load.readers.workbook import open_workbook

        detection, records = open_workbook(
            path, raw, settings, guess, limits, sheet, trailer_detection=trailer_detection
        )
        return FormatSource(guess, detection, records)
    if guess.format is Format.PARQUET:
        return _parquet(path, raw, settings, guess)
    return _json(path, raw, settings, guess, limits)


def _confirm_inner(
    raw: IO[bytes], guess: FormatGuess, compression: Compression, limits: DecompressionLimits
) -> FormatGuess:
    """The inner format from the first decompressed bytes (the sample may not have reached them)."""
    with open_view(raw) as view:
        decompressed = open_decompressed(view, compression, name=guess.name, limits=limits)
        with decompressed.stream as stream:
            head = stream.read(HEAD_BYTES)
    return detect_inner(guess, head)


def base_detection(guess: FormatGuess, headers: Sequence[str], **fields: object) -> Detection:
    """A Detection for a reader's columns: one header row, UTF-8, and the format facts."""
    warnings = (f"read as {guess.format}: {guess.mismatch}",) if guess.mismatch else ()
    values: dict[str, object] = {
        "encoding": "utf-8",
        "delimiter": ",",  # only used to write rejected rows back as CSV
        "header_rows": 1,
        "headers": tuple(headers),
        "format": guess.format.value,
        "compression": guess.compression.value if guess.compression else None,
        "format_mismatch": guess.mismatch,
        "warnings": warnings,
    }
    values.update(fields)
    return Detection(**values)  # type: ignore[arg-type]


def sample_types(
    rows: Sequence[Sequence[str]],
    width: int,
    settings: Settings,
    declared: Sequence[ColumnType | None] = (),
) -> tuple[ColumnType, ...]:
    """Column types from sample values, as the CSV detection infers them (text unless infer);
    under infer a type the format `declared` for a column wins (`prefer_declared`)."""
    from backend.detection.types import TypeTracker, prefer_declared

    tracker = TypeTracker(width, date_order=settings.date_order)
    for values in rows:
        tracker.observe(list(values))
    types = tracker.result()
    if settings.type_policy is TypePolicy.INFER:
        return prefer_declared(types, declared)
    return tuple(ColumnType(ColumnKind.TEXT, length=t.length) for t in types)


def batch_rows(batch: pa.RecordBatch) -> list[list[str]]:
    """A batch of text columns as row lists; a null (a missing JSON key, a Parquet null) is ``""``."""
    columns = [column.to_pylist() for column in batch.columns]
    return [["" if v is None else v for v in row] for row in zip(*columns, strict=True)]


def runs_of_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[Run]:
    """One `Run` per batch, numbered from 1 (every row has the schema's width)."""
    number = 1
    for batch in batches:
        if batch.num_rows:
            rows = batch_rows(batch)
            yield Run(number, rows)
            number += len(rows)


def _compressed_csv(
    path: Path,
    raw: IO[bytes],
    settings: Settings,
    guess: FormatGuess,
    compression: Compression,
    limits: DecompressionLimits,
    trailer_detection: bool,
) -> FormatSource:
    from backend.load.readers.textsample import detect_decompressed

    def decompressed() -> BinaryIO:
        view = open_view(raw)
        return open_decompressed(view, compression, name=path.name, limits=limits, close_source=True).stream

    found = detect_decompressed(path, decompressed, settings, trailer_detection=trailer_detection)
    warnings = (f"read as {guess.format}: {guess.mismatch}",) if guess.mismatch else ()
    detection = _with(
        found,
        format=guess.format.value,
        compression=compression.value,
        format_mismatch=guess.mismatch,
        warnings=found.warnings + warnings,
    )
    width = len(detection.headers)

    def records(stream: IO[bytes]) -> Iterator[Run | Record]:
        drain(stream)
        with decompressed() as text:
            yield from iter_runs(
                text,
                detection,
                width=width,
                size=settings.ingest_batch_size,
                decode_errors=settings.decode_errors,
            )

    return FormatSource(guess, detection, records)


def _parquet(path: Path, raw: IO[bytes], settings: Settings, guess: FormatGuess) -> FormatSource:
    from backend.load.readers.parquet import ParquetSource
    from backend.load.readers.parquet_types import declared_types

    with open_view(raw) as view:
        source = ParquetSource(view, name=path.name)
        names = [c.name for c in source.columns]
        declared = declared_types(c.type for c in source.columns)
        first = next(source.iter_batches(batch_rows=SAMPLE_ROWS), None)
        sample = batch_rows(first) if first is not None else []
        detection = base_detection(
            guess,
            names,
            column_types=sample_types(sample, len(names), settings, declared),
            estimated_rows=source.num_rows,
            declared_types=declared,
        )

    def records(stream: IO[bytes]) -> Iterator[Run | Record]:
        drain(stream)
        with open_view(raw) as again:
            yield from runs_of_batches(
                ParquetSource(again, name=path.name).iter_batches(settings.ingest_batch_size)
            )

    return FormatSource(guess, detection, records)


def _json(
    path: Path, raw: IO[bytes], settings: Settings, guess: FormatGuess, limits: DecompressionLimits
) -> FormatSource:
    from backend.load.readers.jsonfile import iter_json_batches

    ndjson = guess.format is Format.NDJSON

    def opened() -> BinaryIO:
        if guess.compression is None:
            return open_view(raw)
        return open_decompressed(
            open_view(raw), guess.compression, name=path.name, limits=limits, close_source=True
        ).stream

    reopen = (
        opened
        if guess.compression is None
        else reopen_decompressed(lambda: open_view(raw), guess.compression, name=path.name, limits=limits)
    )

    def batches(size: int) -> Generator[pa.RecordBatch, None, None]:
        with opened() as first_pass:
            yield from iter_json_batches(first_pass, reopen, name=path.name, ndjson=ndjson, batch_rows=size)

    # The reader validates the whole file and learns every key before its first batch, so the
    # first batch already has all the columns.
    sample_batches = batches(SAMPLE_ROWS)
    try:
        first = next(sample_batches)
    finally:
        sample_batches.close()
    names = list(first.schema.names)
    detection = base_detection(
        guess,
        names,
        column_types=sample_types(batch_rows(first), len(names), settings),
        sample_rows=first.num_rows,
    )

    def records(stream: IO[bytes]) -> Iterator[Run | Record]:
        drain(stream)
        yield from runs_of_batches(batches(settings.ingest_batch_size))

    return FormatSource(guess, detection, records)


def _with(detection: Detection, **changes: object) -> Detection:
    import dataclasses

    return dataclasses.replace(detection, **changes)  # type: ignore[arg-type]


def rows_in_runs(rows: Iterable[tuple[int, list[str]]], width: int, size: int) -> Iterator[Run | Record]:
    """Numbered rows (sheet row number, cells) as runs of `width` cells and odd rows as records.

    A row narrower than the header is padded (a sheet drops trailing empty cells); a wider one
    with values beyond the header comes as a `Record`, for the ragged-rows policy to judge.
    """
    run: list[list[str]] = []
    first = 1
    number = 0
    for line, cells in rows:
        number += 1
        fitted = fit_width(cells, width)
        if fitted is None:
            if run:
                yield Run(first, run)
                run = []
            yield Record(number, line, cells)
            first = number + 1
            continue
        if not run:
            first = number
        run.append(fitted)
        if len(run) >= size:
            yield Run(first, run)
            run = []
    if run:
        yield Run(first, run)


def fit_width(cells: list[str], width: int) -> list[str] | None:
    """`cells` padded or trimmed of empty cells to `width`; None when values lie beyond it."""
    if len(cells) == width:
        return cells
    if len(cells) < width:
        return cells + [""] * (width - len(cells))
    if any(cells[width:]):
        return None
    return cells[:width]


def modal_width(rows: Sequence[Sequence[str]]) -> int:
    """The most common row width (the widest among equals)."""
    counts = Counter(len(r) for r in rows)
    return max(counts, key=lambda w: (counts[w], w)) if counts else 0


def take(rows: Iterable[tuple[int, list[str]]], count: int) -> list[tuple[int, list[str]]]:
    """The first `count` rows."""
    return list(itertools.islice(rows, count))


def detect_file(
    path: Path, settings: Settings, *, sheet: str | int | None = None, **choices: Any
) -> Detection:
    """What `load` would find in `path`, whatever its format (for ``detect FILE``); `choices`
    (header, trailer_detection, stacked_tables) go to the CSV detector as `load` passes them.

    Raises:
        FileRejectedError: as `load_file` would refuse the file at detection.
    """
    from backend.detection import detect
    from backend.files import open_regular_file

    with open_regular_file(path) as raw:
        guess = sniff(path, raw)
        if guess is None:
            return detect(path, settings, source=raw, **choices)
        trailer = bool(choices.get("trailer_detection", True))
        return open_source(path, raw, settings, guess, sheet=sheet, trailer_detection=trailer).detection


def describe_format(detection: Detection) -> list[str]:
    """Lines for ``detect``: the format and compression, a workbook's sheets, a name mismatch."""
    shown = detection.format + (f", {detection.compression}-compressed" if detection.compression else "")
    lines = [f"Format          {shown}"]
    if detection.sheets:
        others = ", ".join(repr(s) for s in detection.sheets)
        lines.append(f"Sheet           {detection.sheet!r} of {len(detection.sheets)}: {others}")
    if detection.format_mismatch:
        lines.append(f"Name mismatch   {detection.format_mismatch}")
    return lines
