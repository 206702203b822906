"""Parquet files as batches of exact text, read row group by row group; the file's own types kept.

Rendering (vectorised with pyarrow.compute, values never become Python objects):

- integers, booleans (``true``/``false``), dates (``2024-01-31``): Arrow's cast to string;
- decimals with their scale (``1.50`` in a decimal(10,2));
- floats in the shortest form that reads back to the same double (``0.1``, ``42``, ``1e+21``,
  ``nan``, ``inf``); float32 at float32 precision (``0.1``, not ``0.10000000149011612``);
- timestamps and times as ISO text with a space (``2024-01-31 08:30:00``), the fraction only as
  far as it is not zero (``08:30:00.123``), an offset when the column has a time zone
  (``2024-01-31 09:30:00+01:00``, ``...Z`` for UTC);
- dictionary-encoded columns as their values; all-null columns as nulls.

Nested structs are flattened to dotted columns (``address.city``), the JSON reader's rule: it is
lossless apart from telling a null struct from a struct of nulls, and it is vectorised. Lists,
maps, unions, binary and durations are refused with the column and the reason: they have no
single exact text form (a list's elements would need per-value Python rendering), and loading
them some other way would be a silent change. `ParquetSource.column_types` holds the file's own
types; `parquet_types` says which of them ``TYPE_POLICY=infer`` takes for the table's columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend.load.readers.batches import DEFAULT_BATCH_ROWS
from backend.load.readers.errors import (
    DamagedFileError,
    EncryptedFileError,
    TruncatedFileError,
    UnsupportedColumnError,
)

#: Read-ahead per column chunk; with pre_buffer off, memory is pages, not whole column chunks.
_BUFFER_BYTES = 1 << 20
# RE2 (pyarrow's regex engine) has no look-ahead: the zone suffix is captured and put back.
_ZERO_FRACTION = r"\.0+($|Z|[+-]\d{4}$)"
_TRAILING_ZEROS = r"(\.\d*?[1-9])0+($|Z|[+-]\d{4}$)"
_OFFSET = r"([+-]\d{2})(\d{2})$"


@dataclass(frozen=True, slots=True)
class ParquetColumn:
    """One output column: its dotted name, where it sits in the file and its stored type."""

    name: str
    path: tuple[str, ...]
    type: pa.DataType


class ParquetSource:
    """An open Parquet file: its schema, its flattened text columns and its batches.

    Args:
        source: the file, opened in binary mode and seekable (Parquet keeps its index at the end).
        name: the file name, for messages.

    Raises:
        TruncatedFileError, DamagedFileError, EncryptedFileError: the footer cannot be read.
        UnsupportedColumnError: a column has a type with no exact text form.
    """

    def __init__(self, source: BinaryIO, *, name: str) -> None:
        self.name = name
        try:
            self._file = pq.ParquetFile(source, pre_buffer=False, buffer_size=_BUFFER_BYTES)
        except (pa.ArrowException, OSError) as exc:
            raise _read_error(exc, name) from exc
        #: The file's own Arrow schema, as written (for TYPE_POLICY=infer and ``detect``).
        self.arrow_schema: pa.Schema = self._file.schema_arrow
        self.columns = _plan(self.arrow_schema, name)

    @property
    def column_types(self) -> dict[str, pa.DataType]:
        """Stored type of each output column (struct children by their dotted names)."""
        return {column.name: column.type for column in self.columns}

    @property
    def num_rows(self) -> int:
        """Rows the footer announces."""
        return int(self._file.metadata.num_rows)

    def iter_batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The file's rows as batches of text columns, row group by row group."""
        schema = pa.schema([pa.field(c.name, pa.string()) for c in self.columns])
        batches = self._file.iter_batches(batch_size=batch_rows)
        while True:
            try:  # only reading is translated: a failure in rendering is a bug, not a bad file
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                raise _read_error(exc, self.name) from exc
            if batch is None:
                return
            arrays = [text(_column(batch, c.path)) for c in self.columns]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _plan(schema: pa.Schema, name: str) -> list[ParquetColumn]:
    columns: list[ParquetColumn] = []

    def visit(field: pa.Field[Any], path: tuple[str, ...]) -> None:
        if pa.types.is_struct(field.type):
            for child in field.type:
                visit(child, (*path, child.name))
            return
        refusal = _refusal(field.type)
        if refusal:
            raise UnsupportedColumnError(f"column {'.'.join(path)!r} is {field.type}: {refusal}", path=name)
        columns.append(ParquetColumn(".".join(path), path, field.type))

    for field in schema:
        visit(field, (field.name,))
    return columns


def _refusal(data_type: pa.DataType) -> str | None:
    """Why a type cannot load as text, or None when it can."""
    if isinstance(data_type, pa.BaseExtensionType):
        return "extension types are not read; export the column as plain text"
    if pa.types.is_dictionary(data_type):
        return _refusal(data_type.value_type)
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return "bytes have no exact text form; export them as hex or base64 text"
    if pa.types.is_fixed_size_binary(data_type) or pa.types.is_binary_view(data_type):
        return "bytes have no exact text form; export them as hex or base64 text"
    if pa.types.is_duration(data_type):
        return "durations have no agreed text form; export them as a number of seconds"
    if pa.types.is_nested(data_type):
        return "lists, maps and unions are not flattened into columns; export them as JSON text"
    return None


def _column(batch: pa.RecordBatch, path: tuple[str, ...]) -> pa.Array[Any]:
    array: Any = batch.column(path[0])
    for name in path[1:]:
        array = array.flatten()[array.type.get_field_index(name)]  # the struct's nulls carried down
    return cast("pa.Array[Any]", array)


def text(array: pa.Array[Any]) -> pa.Array[Any]:
    """One column as exact text (see the module docstring for the forms)."""
    data_type = array.type
    if pa.types.is_dictionary(data_type):
        return text(pc.cast(array, data_type.value_type))
    if pa.types.is_null(data_type):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_string(data_type):
        return array
    rendered = pc.cast(array, pa.string())
    if pa.types.is_timestamp(data_type) or pa.types.is_time(data_type):
        rendered = pc.replace_substring_regex(rendered, _ZERO_FRACTION, r"\1")
        rendered = pc.replace_substring_regex(rendered, _TRAILING_ZEROS, r"\1\2")
        if pa.types.is_timestamp(data_type) and data_type.tz is not None:
            rendered = pc.replace_substring_regex(rendered, _OFFSET, r"\1:\2")
    return rendered


def _read_error(exc: BaseException, name: str) -> Exception:
    message = str(exc)
    if "decrypt" in message.lower() or "encrypt" in message.lower():
        return EncryptedFileError(f"is an encrypted Parquet file ({message}); drop it unencrypted", path=name)
    if re.search(r"magic bytes not found|size is \d+ bytes|too small|footer", message, re.IGNORECASE):
        return TruncatedFileError(
            f"is not a complete Parquet file ({message}): the copy is probably incomplete", path=name
        )
    return DamagedFileError(f"is not a readable Parquet file ({message})", path=name)
