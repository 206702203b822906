"""Stream a file's records into a private staging table, batch by batch.

The staging table is a temporary table of the load's own connection, so a crash leaves
nothing behind and staging never locks the live tables. Values go in exactly as read: text,
with empty cells as empty strings (publish turns them into NULL when EMPTY_AS_NULL is on), so
that this loop does as little per-cell work as possible.
"""

from __future__ import annotations

import csv
import gc
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.errors import RowError
from backend.models import ColumnType, RaggedPolicy, Record, StageResult

#: How many offending rows a ragged-row error lists before it stops reading.
MAX_REPORTED_ROWS = 10


class TypeObserver(Protocol):
    def observe(self, values: list[str]) -> None: ...

    def result(self) -> tuple[ColumnType, ...]: ...


@dataclass
class _Shape:
    """Applies the ragged-rows policy and remembers what it did."""

    width: int
    policy: RaggedPolicy
    delimiter: str
    rejects_path: Path | None = None
    repaired: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    offending: list[tuple[int, int]] = field(default_factory=list)
    _rejects: Any = None
    _writer: Any = None

    def fix(self, record: Record) -> list[str] | None:
        values = record.values
        n = len(values)
        if self.policy is RaggedPolicy.ERROR:
            self.offending.append((record.line, n))
            if len(self.offending) >= MAX_REPORTED_ROWS:
                self.raise_error()
            return None
        if self.policy is RaggedPolicy.SKIP:
            self.rejected.append(record.line)
            self._reject(record.line, values)
            return None
        self.repaired.append(record.line)
        if n < self.width:
            return values + [""] * (self.width - n)
        # Keep every value: the surplus is joined back into the last column.
        return [*values[: self.width - 1], self.delimiter.join(values[self.width - 1 :])]

    def _reject(self, line: int, values: list[str]) -> None:
        # Streamed to disk: a file of mostly bad rows must not grow memory.
        if self.rejects_path is None:
            return
        if self._writer is None:
            self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
            self._rejects = self.rejects_path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._rejects, lineterminator="\n")
            self._writer.writerow(["line", "fields"])
        self._writer.writerow([line, *values])

    def close(self) -> None:
        if self._rejects is not None:
            self._rejects.close()

    def raise_error(self) -> None:
        lines = [line for line, _ in self.offending]
        first_line, first_width = self.offending[0]
        raise RowError(
            f"line {first_line} has {first_width} fields, the header has {self.width}"
            + (f" (also lines {', '.join(map(str, lines[1:]))})" if len(lines) > 1 else "")
            + "; set RAGGED_ROWS=repair or skip to load such files",
            rows=tuple(lines),
        )


def stage_records(
    conn: Connection,
    db: Database,
    stage: sa.Table,
    records: Iterable[tuple[int, int, list[str]]],
    *,
    width: int,
    policy: RaggedPolicy,
    delimiter: str,
    batch_rows: int,
    types: TypeObserver | None = None,
    on_batch: Callable[[int], None] | None = None,
    rejects_path: Path | None = None,
) -> StageResult:
    """Create `stage` on `conn` and fill it from `records`; returns counts and column types.

    Args:
        width: the header's field count; other rows go through the ragged policy.
        batch_rows: rows per bulk insert.
        types: receives every row's values to infer types over the whole file.
        on_batch: called with the number of rows staged so far after each batch; may raise
            (e.g. CancelledError) to stop between batches.
        rejects_path: where rows skipped by the `skip` policy are written as CSV.
    """
    stage.create(conn)
    shape = _Shape(width, policy, delimiter, rejects_path)
    # Staging allocates a list per row and tuples per batch, none of them in reference cycles;
    # the cyclic collector would rescan the growing heap over and over (a third of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _stage(conn, db, stage, records, shape, batch_rows, types, on_batch)
    finally:
        if collecting:
            gc.enable()
        shape.close()


def _stage(
    conn: Connection,
    db: Database,
    stage: sa.Table,
    records: Iterable[tuple[int, int, list[str]]],
    shape: _Shape,
    batch_rows: int,
    types: TypeObserver | None,
    on_batch: Callable[[int], None] | None,
) -> StageResult:
    width = shape.width
    longest = [0] * width
    rows_read = rows_staged = batches = 0
    bulk_insert = db.adapter.bulk_insert
    # Observers that take a whole transposed batch avoid a second transposition per batch.
    observe_batch = getattr(types, "observe_batch", None)
    observe = types.observe if types is not None and observe_batch is None else None
    for batch in _batches(records, batch_rows):
        rows_read += len(batch)
        numbers: list[int] = []
        data: list[list[str]] = []
        add_number, add_values = numbers.append, data.append
        for number, line, values in batch:
            if len(values) != width:
                fixed = shape.fix(Record(number, line, values))
                if fixed is None:
                    continue
                values = fixed
            add_number(number)
            add_values(values)
        if shape.offending:
            shape.raise_error()
        if not data:
            continue
        # One transposition per batch, in C: lengths, observers and the insert rows all use it.
        columns = list(zip(*data, strict=True))
        for i, column in enumerate(columns):
            n = max(map(len, column))
            if n > longest[i]:
                longest[i] = n
        if observe_batch is not None:
            observe_batch(data, columns)
        elif observe is not None:
            for values in data:
                observe(values)
        bulk_insert(conn, stage, list(zip(numbers, *columns, strict=True)))
        rows_staged += len(data)
        batches += 1
        if on_batch is not None:
            on_batch(rows_staged)
    if shape.offending:
        shape.raise_error()
    column_types = types.result() if types is not None else tuple(ColumnType(length=n) for n in longest)
    if types is not None:
        # The observer decides kinds; lengths come from the staged values either way.
        column_types = tuple(
            ColumnType(t.kind, max(t.length, n), t.precision, t.scale, t.date_format)
            for t, n in zip(column_types, longest, strict=True)
        )
    return StageResult(
        rows_read=rows_read,
        rows_staged=rows_staged,
        rows_rejected=len(shape.rejected),
        batches=batches,
        repaired_lines=tuple(shape.repaired),
        rejected_lines=tuple(shape.rejected),
        column_types=column_types,
    )


def _batches(
    records: Iterable[tuple[int, int, list[str]]], size: int
) -> Iterator[list[tuple[int, int, list[str]]]]:
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
