"""JSON (one top-level array of objects) and NDJSON (one object per line) as text batches.

Two passes: the first reads every object to learn the columns (the union of keys in order of
first appearance, `jsonflat.ColumnPlan`) and validates the whole file; the second, on a stream
from ``reopen()``, yields the batches. A malformed file is therefore refused before the first
batch exists: nothing partial reaches the pipeline.

Streaming: a JSON array goes through ijson (yajl2 C backend), one element in memory at a time,
however long its single line. NDJSON lines up to `LINE_BYTES` are parsed by the json module
(C, fast); a longer line is streamed through ijson, so a 100 MB line costs what its object
costs, not several copies of the line. JSON must be UTF-8 (RFC 8259), with or without a BOM.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, BinaryIO, NoReturn

import ijson  # type: ignore[import-untyped]  # no stubs published
import pyarrow as pa

from backend.errors import EmptyFileError, FileChangedError
from backend.load.readers.batches import DEFAULT_BATCH_ROWS, BatchBuffer
from backend.load.readers.errors import DamagedFileError, JsonShapeError, TruncatedFileError
from backend.load.readers.jsonflat import ColumnPlan, RowFlattener

#: NDJSON lines up to this size are read whole and parsed by the json module; longer ones are
#: streamed through ijson in pieces of this size (ijson re-copies a token that spans pieces, so
#: 64 KiB pieces make a 20 MB string take 3.4 s, 1 MiB pieces 0.35 s).
LINE_BYTES = 8 * 1024 * 1024
_WHITESPACE = b" \t\r\n"


def iter_json_batches(
    stream: BinaryIO,
    reopen: Callable[[], BinaryIO],
    *,
    name: str,
    ndjson: bool,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Read a JSON or NDJSON file as batches of text columns.

    Args:
        stream: the (decompressed) file, read for the first pass.
        reopen: opens the same bytes again from the start for the second pass; the stream it
            returns is closed here.
        name: the file name, for messages.
        ndjson: one object per line (True) or one top-level array (False).
        batch_rows: most rows per batch.

    Raises:
        JsonShapeError: a line or element that is not an object (with its line/element number).
        DamagedFileError, TruncatedFileError: not valid JSON, or it ends early.
        EmptyFileError: no objects, or no keys in any object.
        HeaderError: two keys flatten to one column name, or too many distinct keys.
    """
    plan = ColumnPlan(name)
    for obj in _objects(stream, name, ndjson):
        plan.observe(obj)
    flattener = RowFlattener(plan, name)
    if not plan.rows or not flattener.names:
        raise EmptyFileError(f"holds no {'objects' if not plan.rows else 'keys'} to load", path=name)
    buffer = BatchBuffer(flattener.names, batch_rows)
    rows = 0
    with reopen() as again:
        for obj in _objects(again, name, ndjson):
            rows += 1
            batch = buffer.add(flattener.cells(obj))
            if batch is not None:
                yield batch
    if rows != plan.rows:
        raise FileChangedError(
            f"had {plan.rows:,} objects on the first pass and {rows:,} on the second: the file "
            f"changed while it was read; it will be loaded again",
            path=name,
        )
    last = buffer.flush()
    if last is not None:
        yield last


def json_columns(stream: BinaryIO, *, name: str, ndjson: bool) -> list[str]:
    """The column names a file would load with (one pass; for ``detect``)."""
    plan = ColumnPlan(name)
    for obj in _objects(stream, name, ndjson):
        plan.observe(obj)
    return RowFlattener(plan, name).names


def _objects(stream: BinaryIO, name: str, ndjson: bool) -> Iterator[dict[str, Any]]:
    source = _Utf8Source(stream, name)
    return _lines(source, name) if ndjson else _array(source, name)


class _Utf8Source:
    """Reads through `stream`, dropping a UTF-8 BOM and noting the first significant byte."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self._stream = stream
        self._name = name
        self._started = False
        self.first = b""

    def _start(self, data: bytes) -> bytes:
        if data and not self._started:  # ijson probes with read(0) first
            self._started = True
            if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise DamagedFileError("is UTF-16; JSON must be UTF-8, save it as UTF-8", path=self._name)
            data = data.removeprefix(codecs.BOM_UTF8)
        if not self.first:
            self.first = data.lstrip(_WHITESPACE)[:1]
        return data

    def read(self, size: int = -1) -> bytes:
        return self._start(self._stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._start(self._stream.readline(size))


def _array(source: _Utf8Source, name: str) -> Iterator[dict[str, Any]]:
    element = 0
    try:
        for element, obj in enumerate(ijson.items(source, "item", use_float=False), start=1):
            if source.first != b"[":
                break
            if not isinstance(obj, dict):
                raise JsonShapeError(
                    f"element {element:,} of the top-level array is {_kind(obj)}, not an object; "
                    f"every element must be an object (one row)",
                    path=name,
                    rows=(element,),
                )
            yield obj
    except ijson.JSONError as exc:
        _invalid(exc, name, f"after element {element:,}")
    except RecursionError as exc:
        raise JsonShapeError("is nested too deeply to be read as rows", path=name) from exc
    if source.first != b"[":
        what = "an object" if source.first == b"{" else "no array"
        raise JsonShapeError(
            f"holds {what} at the top level; a .json file must be an array of objects "
            f"(one per row), or NDJSON with one object per line",
            path=name,
        )


def _invalid(exc: Exception, name: str, where: str) -> NoReturn:
    message = str(exc).splitlines()[0]
    if "premature EOF" in message:
        raise TruncatedFileError(
            f"ends in the middle of a JSON value ({where}): the copy is incomplete", path=name
        )
    raise DamagedFileError(f"is not valid JSON {where}: {message}", path=name) from exc


def _refuse_constant(token: str) -> NoReturn:
    raise ValueError(f"{token} is not JSON")


def _lines(source: _Utf8Source, name: str) -> Iterator[dict[str, Any]]:
    number = 0
    while line := source.readline(LINE_BYTES + 1):
        number += 1
        if len(line) > LINE_BYTES and not line.endswith(b"\n"):
            obj = _long_line(line, source, name, number)
        elif line.strip(_WHITESPACE):
            try:
                obj = json.loads(line, parse_float=Decimal, parse_constant=_refuse_constant)
            except RecursionError as exc:
                raise JsonShapeError(
                    f"line {number:,} is nested too deeply", path=name, rows=(number,)
                ) from exc
            except ValueError as exc:
                raise JsonShapeError(
                    f"line {number:,} is not valid JSON ({exc})", path=name, rows=(number,)
                ) from exc
        else:
            continue  # a blank line is no row (a trailing newline, or spacing)
        if not isinstance(obj, dict):
            raise JsonShapeError(
                f"line {number:,} holds {_kind(obj)}, not an object; NDJSON needs one object per line",
                path=name,
                rows=(number,),
            )
        yield obj


def _long_line(start: bytes, source: _Utf8Source, name: str, number: int) -> Any:
    """Parse one line longer than LINE_BYTES by streaming it through ijson."""

    class _Line:
        def __init__(self) -> None:
            self.pending, self.done = start, False

        def read(self, size: int = -1) -> bytes:
            if size == 0:  # ijson's probe for bytes versus text
                return b""
            if self.pending:
                data, self.pending = self.pending, b""
                return data
            if self.done:
                return b""
            data = source.readline(LINE_BYTES)
            self.done = not data or data.endswith(b"\n")
            return data

    line = _Line()
    try:
        values = list(ijson.items(line, "", use_float=False, multiple_values=False))
    except ijson.JSONError as exc:
        raise JsonShapeError(
            f"line {number:,} is not valid JSON ({str(exc).splitlines()[0]})", path=name, rows=(number,)
        ) from exc
    while not line.done:  # drain the rest of the line if the parser stopped early
        line.read()
    return values[0] if values else None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if not isinstance(value, bool) else "a boolean"
