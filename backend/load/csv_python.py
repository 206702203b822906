"""Stream a detected file as records: preamble, header, blank lines and trailer left out.

The bytes are decoded incrementally in 1 MiB chunks (so an undecodable byte is reported with
its exact offset and line, even when the source is a non-seekable stream), split into physical
lines the way the csv module expects (``\\n``, ``\\r\\n`` and ``\\r`` all end a line) and parsed
by the C csv reader. Memory stays bounded by one chunk, the longest record and the trailer
look-ahead. Values are exactly as written: no stripping, no NA guessing; ragged rows are
yielded as they are (the loader applies the ragged-rows policy), except for what the Detection
says is no value: empty fields left by trailing delimiters (`dropped_trailing_columns`) are
dropped, a blank line of a one-column file is a row of one empty value
(`blank_lines_are_values`; blank lines at the very end are not rows), and records that start
after `last_line` (the end of the chosen stacked table) are not read.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from backend.detection.encoding import BOMS
from backend.errors import DetectionError
from backend.models import Detection, Record

CHUNK_BYTES = 1024 * 1024


def reader_options(detection: Detection) -> dict[str, Any]:
    """Keyword arguments for `csv.reader` that read the file as `detection` describes it."""
    options: dict[str, Any] = {
        "delimiter": detection.delimiter,
        "doublequote": detection.doublequote,
        "escapechar": detection.escapechar,
        "skipinitialspace": detection.skipinitialspace,
        "strict": False,
    }
    if detection.quotechar is None:
        options["quoting"] = csv.QUOTE_NONE
    else:
        options["quotechar"] = detection.quotechar
    return options


def _bom_length(detection: Detection) -> int:
    if not detection.bom:
        return 0
    wanted = codecs.lookup(detection.encoding).name
    for bom, encoding in BOMS:
        if codecs.lookup(encoding).name == wanted:
            return len(bom)
    return 0


def iter_records(
    path: Path | IO[bytes], detection: Detection, *, decode_errors: str = "strict"
) -> Iterator[Record]:
    """Like `iter_rows`, as `Record` objects (convenient; `iter_rows` is the fast path)."""
    for number, line, values in iter_rows(path, detection, decode_errors=decode_errors):
        yield Record(number, line, values)


def iter_rows(
    path: Path | IO[bytes], detection: Detection, *, decode_errors: str = "strict"
) -> Iterator[tuple[int, int, list[str]]]:
    """Yield the data records of a file as `detection` describes them.

    Args:
        path: the file, or a binary stream positioned at its first byte (it is not closed).
        detection: the result of `detect` (encoding, dialect, skip/header/trailer rows).
        decode_errors: "strict" raises on undecodable bytes, "replace" puts U+FFFD.

    Yields:
        (number, line, values): `number` counts data rows from 1, `line` is the physical line
        (1-based) where the record starts. Plain tuples: this loop runs once per row.

    Raises:
        DetectionError: undecodable bytes (strict), naming line and byte offset, or a record
            the csv reader cannot parse (e.g. a field past the csv field size limit).
    """
    return _parse(path, detection, decode_errors, lambda reader, offset: _records(reader, detection, offset))


_T = TypeVar("_T")


def _parse(
    path: Path | IO[bytes],
    detection: Detection,
    decode_errors: str,
    body: Callable[[Any, int], Iterator[_T]],
) -> Iterator[_T]:
    """Run `body(csv_reader, line_offset)` over the file, after its preamble, as a generator."""
    # Opened here, inside the generator, so that a generator never started holds no file.
    name: Path | None = None
    if isinstance(path, (str, Path)):
        name = Path(path)
        raw: IO[bytes] = open(name, "rb")  # noqa: SIM115 - closed in the finally below
    else:
        raw = path
    own = name is not None
    try:
        encoding = "utf-8" if detection.encoding == "utf-8-sig" else detection.encoding
        source = _Lines(raw, encoding, decode_errors, _bom_length(detection), detection.encoding, name)
        # Chunks arrive as StringIO objects; chain() hands their lines to the csv reader in C.
        lines = itertools.chain.from_iterable(source.chunks())
        line_offset = detection.skip_rows
        for _ in range(line_offset):
            if next(lines, None) is None:
                return
        reader = csv.reader(lines, **reader_options(detection))
        try:
            yield from body(reader, line_offset)
        except csv.Error as exc:
            line = reader.line_num + line_offset
            raise DetectionError(
                f"line {line}: {exc} (an unbalanced quote?)", path=name, rows=(line,), details={"line": line}
            ) from None
    finally:
        if own:
            raw.close()


def line_numbers(
    raw: IO[bytes], detection: Detection, numbers: Iterable[int], *, decode_errors: str = "strict"
) -> dict[int, int]:
    """The physical line each data row in `numbers` starts on, read again from the file's start.

    For error messages only (a refused file is read a second time, up to its last row named):
    the fast staging path keeps no line numbers.
    """
    wanted = set(numbers)
    if not wanted:
        return {}
    raw.seek(0)
    found: dict[int, int] = {}
    last = max(wanted)
    for number, line, _values in iter_rows(raw, detection, decode_errors=decode_errors):
        if number in wanted:
            found[number] = line
        if number >= last:
            break
    return found


@dataclass(slots=True)
class Run:
    """Consecutive data rows of the expected width: row `first`, `first` + 1, ... (no gap)."""

    first: int
    rows: list[list[str]]


def iter_runs(
    path: Path | IO[bytes],
    detection: Detection,
    *,
    width: int,
    size: int,
    decode_errors: str = "strict",
) -> Iterator[Run | Record]:
    """The data rows of a file in runs of up to `size` rows of `width` values, for bulk staging.

    Rows of another width come one by one as `Record` (with their number and start line), in
    order, between the runs. Numbers count data rows as in `iter_rows`. Per row this does only
    the width check: the row-at-a-time tuple of `iter_rows` cost more than parsing (benchmark).

    Raises:
        DetectionError: as `iter_rows`.
    """
    if detection.trailer_rows or detection.blank_lines_are_values or detection.last_line is not None:
        # The trailer look-ahead, blank-line values and a block end need rows one at a time.
        return _group(iter_rows(path, detection, decode_errors=decode_errors), width, size)
    return _parse(
        path, detection, decode_errors, lambda reader, offset: _runs(reader, detection, offset, width, size)
    )


def _runs(
    reader: Any, detection: Detection, line_offset: int, width: int, size: int
) -> Iterator[Run | Record]:
    if _skip_header(reader, detection) is None:
        return
    number = 0
    rows: list[list[str]] = []
    append = rows.append
    dropped = detection.dropped_trailing_columns
    for values in reader:
        if dropped and len(values) == width + dropped and not any(values[width:]):
            values = values[:width]  # trailing delimiters: empty fields, no values
        if len(values) == width:
            append(values)
            if len(rows) >= size:
                yield Run(number + 1, rows)
                number += len(rows)
                rows = []
                append = rows.append
        elif values:  # a blank line is no record
            if rows:
                yield Run(number + 1, rows)
                number += len(rows)
                rows = []
                append = rows.append
            number += 1
            # The record ends on line_num; it started as many line breaks earlier as it holds.
            breaks = sum(map(_line_breaks, values))
            yield Record(number, reader.line_num + line_offset - breaks, values)
    if rows:
        yield Run(number + 1, rows)


def _group(records: Iterator[tuple[int, int, list[str]]], width: int, size: int) -> Iterator[Run | Record]:
    run: Run | None = None
    for number, line, values in records:
        if len(values) != width:
            if run is not None:
                yield run
                run = None
            yield Record(number, line, values)
            continue
        if run is None:
            run = Run(number, [])
        run.rows.append(values)
        if len(run.rows) >= size:
            yield run
            run = None
    if run is not None:
        yield run


def _records(reader: Any, detection: Detection, line_offset: int) -> Iterator[tuple[int, int, list[str]]]:
    previous = _skip_header(reader, detection)
    if previous is None:
        return
    if not (
        detection.trailer_rows
        or detection.dropped_trailing_columns
        or detection.blank_lines_are_values
        or detection.last_line is not None
    ):
        # The hot loop: one C-parsed row in, one tuple out.
        number = 0
        for values in reader:
            start = previous + 1
            previous = reader.line_num
            if values:
                number += 1
                yield number, start + line_offset, values
        return
    records = _with_lines(reader, previous, line_offset)
    if detection.blank_lines_are_values:
        records = _blank_values(records)
    if detection.last_line is not None:
        last = detection.last_line
        records = itertools.takewhile(lambda item: item[0] <= last, records)
    width, dropped = len(detection.headers), detection.dropped_trailing_columns
    number = 0
    pending: deque[tuple[int, list[str]]] = deque()
    trailer = detection.trailer_rows
    for start, values in records:
        if not values:
            continue  # a blank line is no record
        if dropped and len(values) == width + dropped and not any(values[width:]):
            values = values[:width]
        pending.append((start, values))
        if len(pending) > trailer:
            start, values = pending.popleft()
            number += 1
            yield number, start, values


def _with_lines(reader: Any, previous: int, line_offset: int) -> Iterator[tuple[int, list[str]]]:
    """(start line, values) of every record, blank lines included (as [])."""
    for values in reader:
        start = previous + 1 + line_offset
        previous = reader.line_num
        yield start, values


def _blank_values(records: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    """Blank lines as rows of one empty value, except those at the very end of the file."""
    blanks: list[int] = []
    for start, values in records:
        if not values:
            blanks.append(start)
            continue
        for line in blanks:
            yield line, [""]
        blanks = []
        yield start, values


def _skip_header(reader: Any, detection: Detection) -> int | None:
    """Read past the header records; the reader's line then, or None if the file ends first."""
    previous = 0
    header_left = detection.header_rows
    if header_left:
        for values in reader:
            previous = reader.line_num
            if values:
                header_left -= 1
                if not header_left:
                    break
        if header_left:
            return None
    return previous


def _line_breaks(text: str) -> int:
    """Line breaks in `text`: "\\n", "\\r\\n" and "\\r" each count once."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


class _Lines:
    """Physical lines of a binary stream, decoded chunk by chunk, tracking byte offsets."""

    def __init__(
        self, raw: IO[bytes], encoding: str, errors: str, bom: int, shown: str, path: Path | None
    ) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._bom = bom
        self._shown = shown
        self._path = path
        self._offset = 0  # bytes consumed from the stream
        self._breaks = 0  # line breaks in the text decoded so far (for error messages)
        self._after_cr = False

    def chunks(self) -> Iterator[io.StringIO]:
        """The text as StringIO objects of whole lines (the last may lack its line break)."""
        raw = self._raw
        if self._bom:
            self._offset += len(raw.read(self._bom))
        carry = ""
        while True:
            chunk = raw.read(CHUNK_BYTES)
            text = carry + self._decode(chunk)
            if chunk:
                # Keep the partial last line (and a final "\r" that may start "\r\n") for later.
                cut = max(text.rfind("\n"), text.rfind("\r"))
                if cut == len(text) - 1 and text[cut] == "\r":
                    cut = max(text.rfind("\n", 0, cut), text.rfind("\r", 0, cut))
                carry = text[cut + 1 :]
                text = text[: cut + 1]
            yield io.StringIO(text, newline="")
            if not chunk:
                return

    def _decode(self, chunk: bytes) -> str:
        pending = len(self._decoder.getstate()[0])
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            good = exc.object[: exc.start]
            before = good.decode(exc.encoding, errors="replace") if good else ""
            line = self._breaks + self._count_breaks(before) + 1
            offset = self._offset - pending + exc.start
            raise DetectionError(
                f"line {line}: bytes at offset {offset} cannot be decoded as {self._shown} "
                f"(byte 0x{exc.object[exc.start]:02x})",
                path=self._path,
                rows=(line,),
                details={"offset": offset, "line": line},
            ) from None
        self._offset += len(chunk)
        self._breaks += self._count_breaks(text)
        return text

    def _count_breaks(self, text: str) -> int:
        count = _line_breaks(text)
        if self._after_cr and text.startswith("\n"):
            count -= 1
        if text:
            self._after_cr = text.endswith("\r")
        return count
