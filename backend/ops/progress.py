"""The progress bar of `load` on a terminal; nothing at all when stderr is not one (logs, pipes, CI)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: (rows staged so far, estimated rows or None), as `LoadHooks.on_progress` calls it.
ProgressHook = Callable[[int, int | None], None]


@contextmanager
def progress_bar(name: str, *, enabled: bool) -> Iterator[ProgressHook | None]:
    """A rows-staged bar on stderr for the duration of the block; yields the hook (None when disabled)."""
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = progress.add_task(name.replace("[", r"\["), total=None)

    def on_progress(rows_done: int, estimated: int | None) -> None:
        # The estimate comes from the detection sample: never let the bar claim more than 100 %.
        total = max(estimated, rows_done) if estimated else None
        progress.update(task, completed=rows_done, total=total)

    with progress:
        yield on_progress
