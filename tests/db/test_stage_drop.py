"""How a load gets rid of its staging table: SQLite closes the connection when the stage is big."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.db import sqlite as sqlite_adapter
from backend.load.loader import load_file
from backend.models import LoadRequest, LoadType
from tests.support import export_rows, make_settings, open_db, write_csv


def _invalidations(db) -> list[object]:
    seen: list[object] = []
    sa.event.listen(db.engine, "invalidate", lambda *args: seen.append(args))
    return seen


def _drops(db) -> list[str]:
    """DROP TABLE statements sent: the loader's error fallback also invalidates, so an
    invalidation alone does not tell a deliberate close from a failed drop."""
    sent: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("DROP TABLE"):
            sent.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    return sent


def _files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "in").mkdir()
    (tmp_path / "in2").mkdir()
    first = write_csv(
        tmp_path / "in" / "codes.csv", [["code", "name"], *([f"C{i}", f"n{i}"] for i in range(50))]
    )
    second = write_csv(tmp_path / "in2" / "codes.csv", [["code", "name"], ["Z1", "last"]])
    return first, second


@pytest.mark.parametrize("threshold,closes", [(0, True), (10**9, False)])
def test_a_big_sqlite_stage_closes_the_connection_and_the_next_load_reconnects(
    tmp_path, sqlite_url, monkeypatch, threshold, closes
):
    """Past the page threshold the connection is invalidated instead of DROP TABLE; loads go on."""
    monkeypatch.setattr(sqlite_adapter, "_SQLITE_DISCARD_PAGES", threshold)
    settings = make_settings(tmp_path, sqlite_url)
    db = open_db(settings)
    try:
        seen, drops = _invalidations(db), _drops(db)
        first, second = _files(tmp_path)
        load_file(db, settings, LoadRequest(path=first))
        # Either closed without a DROP, or dropped without closing; never both.
        assert (len(seen), len(drops)) == ((1, 0) if closes else (0, 1))
        result = load_file(db, settings, LoadRequest(path=second, load_type=LoadType.APPEND))
        rows = export_rows(db, result.table)
        assert len(rows) == 1 + 50 + 1 and rows[-1] == ["Z1", "last"]
    finally:
        db.dispose()


def test_an_in_memory_sqlite_database_is_never_closed_to_drop_a_stage(tmp_path, monkeypatch):
    """In memory, the one shared connection is the database: the stage is dropped instead."""
    monkeypatch.setattr(sqlite_adapter, "_SQLITE_DISCARD_PAGES", 0)
    settings = make_settings(tmp_path, "sqlite://")
    db = open_db(settings)
    try:
        seen, drops = _invalidations(db), _drops(db)
        first, second = _files(tmp_path)
        load_file(db, settings, LoadRequest(path=first))
        result = load_file(db, settings, LoadRequest(path=second, load_type=LoadType.APPEND))
        assert seen == [] and len(drops) == 2
        assert len(export_rows(db, result.table)) == 1 + 50 + 1
    finally:
        db.dispose()
