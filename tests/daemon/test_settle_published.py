"""`process_file` says when a file's rows are committed, so the loop can free its table early."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from backend.daemon import folders, settle
from backend.daemon.metrics import Metrics
from backend.daemon.runtime import Runtime
from backend.daemon.stability import ReadyFile, StabilityTracker
from tests.support import make_settings, open_db


def runtime(tmp_path: Path, url: str) -> Runtime:
    settings = make_settings(tmp_path, url, monitor_interval=0.1, stability_checks=1)
    folders.ensure_directories(settings.dropoff_base_path)
    return Runtime(
        settings=settings,
        db=open_db(settings),
        stop=threading.Event(),
        tracker=StabilityTracker(1),
        metrics=Metrics(),
    )


def settle_one(rt: Runtime, name: str, text: str) -> tuple[str, list[tuple[bool, int]]]:
    """Settle one append file; what `published` saw each time: (file still in the drop folder,
    rows in the table)."""
    path = rt.settings.dropoff_base_path / "none_reference_data_table" / "append" / name
    path.write_text(text)
    info = path.stat()
    calls: list[tuple[bool, int]] = []

    def published() -> None:
        with rt.db.engine.connect() as conn:
            count = conn.execute(sa.text("SELECT COUNT(*) FROM ref.codes")).scalar_one()
        calls.append((path.exists(), count))

    outcome = settle.process_file(rt, ReadyFile(path=path, size=info.st_size, mtime=info.st_mtime), published)
    return outcome, calls


def test_published_comes_once_after_the_commit_and_before_the_move(tmp_path: Path, db_url: str) -> None:
    rt = runtime(tmp_path, db_url)
    try:
        outcome, calls = settle_one(rt, "codes.csv", "code\nA\nB\n")
        assert outcome == "loaded"
        assert calls == [(True, 2)]  # committed (another connection sees the rows), not yet moved
        outcome, calls = settle_one(rt, "broken.csv", "a,b\n1,2,3\n")
        assert outcome == "error" and calls == []  # a refused file never frees its table early
    finally:
        rt.db.dispose()
