"""The whole-file first pass of TYPE_POLICY=infer: every value through a `TypeTracker`.

A plain CSV file the Arrow reader reads exactly (`write.arrow_eligible`) is passed as string
arrays to `ArrowTypeTracker.observe_arrow`, vectorised (0.75 s on the 100 MB file, against 4.2 s
row by row in Python, bench/RESULTS.md). Every other file, and one
the Arrow reader refuses part-way (a ragged row, undecodable bytes), is read row by row by the
Python reader, from the start and into a fresh tracker, so the types are the ones the Python
path always gave and a file it loads is never refused for the Arrow reader's sake. The
refusal is kept in `LoadContext.arrow_refused`: the load that follows reads in Python straight
away instead of being refused a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO

import structlog

from backend.errors import ArrowRefusedError
from backend.load.context import LoadContext
from backend.load.csv_python import Run, iter_rows
from backend.load.write import arrow_eligible
from backend.models import ColumnType, Detection, Record

log = structlog.get_logger(__name__)

#: Rows per batch of the Arrow pass, as the load's own batches. Larger ones are no faster on the
#: 100 MB file (0.68 s at 10,000 rows, 0.70 s at 32,768, 0.67 s at 65,536) and raise the
#: process's peak (169, 191, 214 MB): the load that follows peaks at about 170 MB.
ARROW_PASS_ROWS = 10_000


def infer_file_types(ctx: LoadContext) -> tuple[ColumnType, ...]:
    """Each column's type over every row of the file (`TypeTracker.result`); `ctx.raw` is read
    from its start and left there."""
    width, date_order = len(ctx.columns), ctx.settings.date_order
    try:
        if arrow_eligible(ctx):
            try:
                return arrow_pass(ctx.raw, ctx.detection, width=width, date_order=date_order)
            except ArrowRefusedError as exc:
                log.info("arrow reader refused the file; types from the python reader", reason=str(exc))
                ctx.arrow_refused.append(str(exc))
        return python_pass(
            ctx.raw,
            ctx.detection,
            width=width,
            date_order=date_order,
            decode_errors=ctx.settings.decode_errors,
            records=ctx.records,
        )
    finally:
        ctx.raw.seek(0)


def arrow_pass(
    raw: IO[bytes], detection: Detection, *, width: int, date_order: str
) -> tuple[ColumnType, ...]:
    """The types of a plain CSV file read by the Arrow reader (`arrow_csv.iter_arrow_runs`).

    Raises:
        ArrowRefusedError: the Arrow reader cannot read the file as the Python reader would.
    """
    from backend.detection.arrow_types import ArrowTypeTracker
    from backend.load.arrow_csv import iter_arrow_runs

    tracker = ArrowTypeTracker(width, date_order=date_order)
    raw.seek(0)
    for run in iter_arrow_runs(raw, detection, width=width, size=ARROW_PASS_ROWS):
        tracker.observe_arrow(run.columns)
    return tracker.result()


def python_pass(
    raw: IO[bytes],
    detection: Detection,
    *,
    width: int,
    date_order: str,
    decode_errors: str = "strict",
    records: Callable[[IO[bytes]], Iterable[Run | Record]] | None = None,
) -> tuple[ColumnType, ...]:
    """The types of a file read row by row: by `records` (a format other than plain CSV), else
    by the Python CSV reader."""
    from backend.detection.types import TypeTracker

    tracker = TypeTracker(width, date_order=date_order)
    raw.seek(0)
    if records is not None:
        for item in records(raw):
            for values in item.rows if isinstance(item, Run) else (item.values,):
                tracker.observe(values)
    else:
        for _number, _line, values in iter_rows(raw, detection, decode_errors=decode_errors):
            tracker.observe(values)
    return tracker.result()
