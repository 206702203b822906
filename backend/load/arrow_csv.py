"""Read a detected CSV file as Arrow record batches of exact strings (the columnar load path).

pyarrow's streaming reader parses in C++ and hands over string arrays, so no value becomes a
Python object (turning every value back into one costs more than the csv module's whole parse,
bench/RESULTS.md). It is used only for dialects it reads exactly like `csv_python` (`eligible`);
anything else, and anything it refuses part-way (a ragged row, undecodable bytes, a field past
the csv module's size limit), raises `ArrowRefusedError` and the load starts again on the Python
reader, which then reports or repairs the row exactly as it always did.

The preamble and the header are skipped here, in Python, with the very csv reader the Python
path uses (so a header record spanning lines or blank lines before it count the same); Arrow
gets the bytes from the first data record on, as UTF-8 (other encodings are transcoded by the
same Python codec). Blank lines are no rows on both paths. Batches are re-cut to exactly
`batch_rows` rows so that both paths check, profile and send the same batches.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from backend.errors import ArrowRefusedError
from backend.load.csv_python import _bom_length, _skip_header, reader_options
from backend.models import Detection

#: Bytes read in Python before Arrow takes over: the preamble and header must end inside them.
HEAD_BYTES = 1 << 20
#: Arrow's parse block. 256 KiB against 1 MiB: peak RSS of the 100 MB PostgreSQL load 170 MB
#: against 204 MB, no slower (bench/RESULTS.md, fifth round). A longer record is carried over
#: into the next block by Arrow (tested).
BLOCK_BYTES = 1 << 18


@dataclass(slots=True)
class ArrowRun:
    """Consecutive data rows `first`, `first` + 1, ... as one string array per column."""

    first: int
    columns: list[pa.Array]

    @property
    def num_rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0


def eligible(detection: Detection, *, decode_errors: str = "strict") -> str | None:
    """None when Arrow reads `detection`'s dialect exactly like `csv_python`; else why not."""
    if decode_errors != "strict":
        return "DECODE_ERRORS=replace"
    if detection.skipinitialspace:
        return "skipinitialspace"
    if detection.trailer_rows or detection.last_line is not None:
        return "trailer or block end"
    if detection.blank_lines_are_values:
        return "blank lines are values"
    if detection.dropped_trailing_columns:
        return "trailing delimiters"
    for name, char in (
        ("delimiter", detection.delimiter),
        ("quote", detection.quotechar),
        ("escape", detection.escapechar),
    ):
        if char is not None and (len(char) != 1 or not char.isascii() or char in "\r\n"):
            return f"{name} {char!r}"
    if detection.quotechar is not None and detection.escapechar is not None and not detection.doublequote:
        return "escape without doubled quotes"
    try:
        codecs.lookup(detection.encoding)
    except LookupError:
        return f"encoding {detection.encoding}"
    return None


def iter_arrow_runs(raw: IO[bytes], detection: Detection, *, width: int, size: int) -> Iterator[ArrowRun]:
    """The data rows of the file as runs of exactly `size` rows (the last may be shorter).

    Raises:
        ArrowRefusedError: the file holds something the Python reader must handle (possibly
            after runs were yielded: the caller then starts over on the Python path).
    """
    if width < 1:
        raise ArrowRefusedError("no columns")
    bom = _bom_length(detection)
    if bom:
        raw.read(bom)
    stream: Any = pa.PythonFile(raw, mode="r")
    encoding = codecs.lookup("utf-8" if detection.encoding == "utf-8-sig" else detection.encoding).name
    if encoding != "utf-8":
        stream = pa.transcoding_input_stream(stream, encoding, "utf-8")
    try:
        rest = _past_header(stream, detection)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ArrowRefusedError(_reason(exc)) from None
    if rest is None:
        return
    names = [f"c{i}" for i in range(width)]
    options = (
        pa_csv.ReadOptions(column_names=names, block_size=BLOCK_BYTES, use_threads=False),
        pa_csv.ParseOptions(
            delimiter=detection.delimiter,
            quote_char=detection.quotechar if detection.quotechar is not None else False,
            double_quote=detection.doublequote,
            escape_char=detection.escapechar if detection.escapechar is not None else False,
            newlines_in_values=True,
            ignore_empty_lines=True,
        ),
        pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[],
            check_utf8=True,
        ),
    )
    try:
        reader = pa_csv.open_csv(pa.PythonFile(_Prefixed(rest, stream), mode="r"), *options)
        yield from _rechunk(reader, size)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if str(exc).startswith("Empty CSV file"):
            return  # nothing but the header (and blank lines): no rows, as in Python
        raise ArrowRefusedError(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    """Why Arrow refused, without the row it quotes (it would carry the file's values, secrets
    included, into the log and the tracking tables)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"bytes that are not {exc.encoding}"
    found = re.search(r"Expected \d+ columns, got \d+", str(exc))
    return found.group(0) if found else f"{type(exc).__name__} from the Arrow reader"


def _rechunk(reader: Any, size: int) -> Iterator[ArrowRun]:
    limit = csv.field_size_limit()
    pending: list[pa.RecordBatch] = []
    held = 0
    number = 1
    for batch in reader:
        if not batch.num_rows:
            continue
        _check_lengths(batch, limit)
        pending.append(batch)
        held += batch.num_rows
        while held >= size:
            table = pa.Table.from_batches(pending)
            head, tail = table.slice(0, size), table.slice(size)
            yield ArrowRun(number, [c.combine_chunks() for c in head.columns])
            number += size
            held -= size
            pending = tail.to_batches() if held else []
    if held:
        table = pa.Table.from_batches(pending)
        yield ArrowRun(number, [c.combine_chunks() for c in table.columns])


def _check_lengths(batch: pa.RecordBatch, limit: int) -> None:
    """The csv module refuses a field longer than its limit (a runaway quote, usually)."""
    for column in batch.columns:
        longest = pc.max(pc.binary_length(column)).as_py()
        if longest is not None and longest > limit and pc.max(pc.utf8_length(column)).as_py() > limit:
            raise ArrowRefusedError("field larger than field limit")


def _past_header(stream: Any, detection: Detection) -> bytes | None:
    """Read past the preamble and header; the bytes read beyond them, or None if no data follows."""
    head = stream.read(HEAD_BYTES)
    at_end = len(head) < HEAD_BYTES
    cut = len(head)
    if not at_end:
        cut = max(head.rfind(b"\n"), head.rfind(b"\r")) + 1
        if cut == len(head) and head.endswith(b"\r"):
            cut = max(head.rfind(b"\n", 0, cut - 1), head.rfind(b"\r", 0, cut - 1)) + 1
        if cut <= 0:
            raise ArrowRefusedError("the header does not end in the first MiB")
    text = head[:cut].decode("utf-8")
    counted = _Counted(io.StringIO(text, newline=""))
    for _ in range(detection.skip_rows):
        if next(counted, None) is None:
            return None if at_end else _refuse()
    reader = csv.reader(counted, **reader_options(detection))
    if _skip_header(reader, detection) is None:
        return None if at_end else _refuse()
    if counted.exhausted and not at_end:
        _refuse()
    return bytes(head[len(text[: counted.chars].encode("utf-8")) :])


def _refuse() -> bytes:
    raise ArrowRefusedError("the header does not end in the first MiB")


class _Counted:
    """Lines of a StringIO, counting the characters handed out (where the header ends)."""

    def __init__(self, lines: io.StringIO) -> None:
        self._lines = lines
        self.chars = 0
        self.exhausted = False

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> str:
        line = self._lines.readline()
        if not line:
            self.exhausted = True
            raise StopIteration
        self.chars += len(line)
        return line


class _Prefixed:
    """A readable file: `prefix`, then the rest of `stream` (an Arrow input stream)."""

    def __init__(self, prefix: bytes, stream: Any) -> None:
        self._prefix, self._stream = prefix, stream
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data, self._prefix = self._prefix + self._stream.read(), b""
                return bytes(data)
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        data = self._stream.read() if size is None or size < 0 else self._stream.read(size)
        return bytes(data)

    def close(self) -> None:
        self.closed = True
