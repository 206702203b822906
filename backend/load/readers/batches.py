"""Rows of text collected into bounded Arrow record batches of string columns."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

#: A batch is flushed at this many bytes of text even before `batch_rows` rows: a 32-bit offset
#: string column holds at most 2 GiB, and wide rows must not make one batch huge.
MAX_BATCH_BYTES = 64 * 1024 * 1024
DEFAULT_BATCH_ROWS = 65_536


def string_schema(names: Sequence[str]) -> pa.Schema:
    """All columns text, named as in the source."""
    return pa.schema([pa.field(name, pa.string()) for name in names])


def rows_to_batch(schema: pa.Schema, rows: Sequence[Sequence[str | None]]) -> pa.RecordBatch:
    """Row lists (each exactly as long as the schema) as one record batch."""
    columns: list[Sequence[str | None]] = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pa.RecordBatch.from_arrays([pa.array(c, type=pa.string()) for c in columns], schema=schema)


class BatchBuffer:
    """Collects rows and hands out a batch every `batch_rows` rows or `MAX_BATCH_BYTES` bytes."""

    def __init__(self, names: Sequence[str], batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
        self.schema = string_schema(names)
        self._batch_rows = batch_rows
        self._rows: list[Sequence[str | None]] = []
        self._bytes = 0

    def add(self, row: Sequence[str | None]) -> pa.RecordBatch | None:
        """Add one row; returns a full batch when one is ready."""
        self._rows.append(row)
        self._bytes += sum(len(v) for v in row if v)
        if len(self._rows) >= self._batch_rows or self._bytes >= MAX_BATCH_BYTES:
            return self.flush()
        return None

    def flush(self) -> pa.RecordBatch | None:
        """The rows collected so far as a batch, or None when there are none."""
        if not self._rows:
            return None
        batch = rows_to_batch(self.schema, self._rows)
        self._rows, self._bytes = [], 0
        return batch
