"""Stream Arrow runs (`arrow_csv.iter_arrow_runs`) into the sink: checked, profiled, written.

The columnar twin of `stage.stream_records`, batch for batch: the same batches are checked
(vectorised, `convert.Checker.observe_arrow`), the same misfit rules stop the stream (the batch
holding one is not sent, one more batch is checked so the message names more rows), the same
rows are profiled and the sink gets the string arrays as they are (`Sink.arrow`). Every row has
the header's width here (Arrow refuses ragged rows), so there is no ragged-rows policy to apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from backend.db.adapter import Sink
from backend.load.arrow_csv import ArrowRun
from backend.load.convert import Checker
from backend.models import StageResult
from backend.quality.profile import ProfileObserver


def stream_arrow(
    sink: Sink,
    runs: Iterable[ArrowRun],
    *,
    checker: Checker | None = None,
    observer: ProfileObserver | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> StageResult:
    """Send every run to `sink`; returns the counts `stream_records` would."""
    rows_read = rows_staged = batches = failing = 0
    checker = checker if checker else None
    for run in runs:
        count = run.num_rows
        rows_read += count
        if checker is not None:
            checker.observe_arrow(run.first, run.columns)
            if checker.misfits():
                failing += 1
                if failing > 1:
                    break
                continue
        if observer is not None:
            observer.observe_arrow(run.columns)
        sink.arrow(run.first, run.columns)
        rows_staged += count
        batches += 1
        if on_batch is not None:
            on_batch(rows_staged)
    return StageResult(
        rows_read=rows_read,
        rows_staged=rows_staged,
        rows_rejected=0,
        batches=batches,
        repaired_lines=(),
        rejected_lines=(),
        column_types=observer.result() if observer is not None else (),
    )
