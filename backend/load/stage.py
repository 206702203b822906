"""Stream a file's records, batch by batch, into the table the load writes.

That table is a new version of its own for a fullload, the live table for an append (see
`backend.load.loader`). Values leave this loop exactly as read; the sink converts them to the
columns' types (checked first by `backend.load.convert`) and makes empty cells NULL, so that the
loop does as little per-cell work as possible. The ragged-rows policy applies here.
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from backend.db.adapter import Sink
from backend.errors import RowError
from backend.load.convert import Checker
from backend.load.csv_python import Run
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
    #: Masks a rejected row's protected values before it is written (see `sensitive.redact_row`).
    redact_row: Callable[[list[str]], list[str]] | None = None
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
        self._writer.writerow([line, *(self.redact_row(values) if self.redact_row else values)])

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


def stream_records(
    sink: Sink,
    records: Iterable[Run | Record],
    *,
    width: int,
    policy: RaggedPolicy,
    delimiter: str,
    batch_rows: int,
    types: TypeObserver | None = None,
    on_batch: Callable[[int], None] | None = None,
    rejects_path: Path | None = None,
    checker: Checker | None = None,
    redact_row: Callable[[list[str]], list[str]] | None = None,
) -> StageResult:
    """Send `records` (`csv_python.iter_runs`) to `sink` in batches; returns counts and types.

    Args:
        width: the header's field count; other rows go through the ragged policy.
        batch_rows: rows per batch.
        types: sees every batch before it is sent (the load profile).
        on_batch: called with the number of rows sent so far after each batch; may raise
            (e.g. CancelledError) to stop between batches.
        rejects_path: where rows skipped by the `skip` policy are written as CSV.
        checker: checks every batch's values against the typed columns they go into, before it is
            sent. Once a batch holds a misfit nothing more is sent; one more batch is checked so
            that the message can name more lines, then streaming stops: the caller reads the
            misfits from the checker and refuses the file or loads it again differently.
    """
    shape = _Shape(width, policy, delimiter, rejects_path, redact_row)
    # Streaming allocates a list per row and tuples per batch, none of them in reference cycles;
    # the cyclic collector would rescan the growing heap over and over (a third of the time).
    collecting = gc.isenabled()
    gc.disable()
    batcher = _Batcher(sink.rows, types, on_batch, checker)
    try:
        _fill(batcher, shape, records, batch_rows)
    except _MisfitsFound:
        pass
    finally:
        if collecting:
            gc.enable()
        shape.close()
    return batcher.result(shape)


def _fill(batcher: _Batcher, shape: _Shape, records: Iterable[Run | Record], batch_rows: int) -> None:
    """Feed every record to the batcher, applying the ragged-rows policy on the way."""
    failing_from: int | None = None  # rows read when the first ragged row made the load fail
    for item in records:
        if isinstance(item, Run):
            batcher.rows_read += len(item.rows)
            if failing_from is not None:
                # Nothing more is staged; read one more batch to name more offending rows.
                if batcher.rows_read - failing_from >= batch_rows:
                    shape.raise_error()
                continue
            batcher.add(item.first, item.rows)
        else:
            batcher.rows_read += 1
            fixed = shape.fix(item)
            if fixed is not None:
                batcher.add(item.number, [fixed])
            elif shape.offending and failing_from is None:
                failing_from = batcher.rows_read
        if failing_from is None and len(batcher.pending) >= batch_rows:
            batcher.flush()
    if shape.offending:
        shape.raise_error()
    batcher.flush()


class _Batcher:
    """Collects consecutive rows into batches and sends each one to the stage."""

    def __init__(
        self,
        send: Callable[[int, list[list[str]]], None],
        types: TypeObserver | None,
        on_batch: Callable[[int], None] | None,
        checker: Checker | None = None,
    ) -> None:
        self.send, self.types, self.on_batch = send, types, on_batch
        self.checker = checker if checker else None
        self.rows_read = self.rows_staged = self.batches = 0
        self.failing = 0
        self.first = 1
        self.pending: list[list[str]] = []
        # Observers that take a whole batch (and transpose only what they look at) save a Python
        # call per row.
        self.observe_batch = getattr(types, "observe_batch", None)

    def add(self, first: int, rows: list[list[str]]) -> None:
        """Queue rows numbered `first`, `first` + 1, ...; a gap in the numbers starts a new batch."""
        if self.pending and self.first + len(self.pending) != first:
            self.flush()
        if self.pending:
            self.pending.extend(rows)
        else:
            self.first, self.pending = first, rows

    def flush(self) -> None:
        data = self.pending
        if not data:
            return
        self.pending = []
        if self.checker is not None:
            self.checker.observe_rows(self.first, data)
            if self.checker.misfits():
                self.failing += 1
                if self.failing > 1:
                    raise _MisfitsFound
                return
        if self.observe_batch is not None:
            self.observe_batch(data)
        elif self.types is not None:
            observe = self.types.observe
            for values in data:
                observe(values)
        self.send(self.first, data)
        self.rows_staged += len(data)
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.rows_staged)

    def result(self, shape: _Shape) -> StageResult:
        types = self.types
        column_types = types.result() if types is not None else ()
        return StageResult(
            rows_read=self.rows_read,
            rows_staged=self.rows_staged,
            rows_rejected=len(shape.rejected),
            batches=self.batches,
            repaired_lines=tuple(shape.repaired),
            rejected_lines=tuple(shape.rejected),
            column_types=column_types,
        )


class _MisfitsFound(Exception):
    """Stops streaming once a misfit's batch and the one after it were checked."""
