"""Lengths and empty cells counted on the way to the database (`backend.load.measure`)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import sqlalchemy as sa

from backend.load.loader import load_file
from backend.load.measure import Measured
from backend.models import LoadRequest
from tests.support import export_rows, make_settings, open_db, write_csv


class _Kept:
    """A sink that keeps what it is given, and extends row lists as the real sinks may."""

    def __init__(self) -> None:
        self.rows_seen: list[tuple[int, list[list[str]]]] = []
        self.arrays_seen: list[tuple[int, list[list[str]]]] = []

    def rows(self, first: int, rows: list[list[str]]) -> None:
        self.rows_seen.append((first, [list(r) for r in rows]))
        for row in rows:
            row.append("metadata")

    def arrow(self, first: int, columns) -> None:
        self.arrays_seen.append((first, [c.to_pylist() for c in columns]))


BATCHES = [
    [["abc", "", "é"], ["a", "", ""]],
    [["", "x" * 7, "😀😀"], ["abcd", "", "y"]],
]


def _feed_rows(measured: Measured) -> None:
    first = 1
    for batch in BATCHES:
        measured.rows(first, [list(r) for r in batch])
        first += len(batch)


def _feed_arrow(measured: Measured) -> None:
    first = 1
    for batch in BATCHES:
        measured.arrow(first, [pa.array(list(column), pa.string()) for column in zip(*batch, strict=True)])
        first += len(batch)


@pytest.mark.parametrize("feed", [_feed_rows, _feed_arrow], ids=["rows", "arrow"])
class TestMeasured:
    def test_counts_characters_and_empty_cells_over_every_batch(self, feed):
        measured = Measured(_Kept(), 3)
        feed(measured)
        assert measured.longest == [4, 7, 2]  # an emoji is one character
        assert measured.empty == [1, 3, 1]

    def test_counts_utf16_code_units_where_the_database_does(self, feed):
        """SQL Server's NVARCHAR(n) counts UTF-16 units: an emoji beyond U+FFFF takes two."""
        measured = Measured(_Kept(), 3, utf16=True)
        feed(measured)
        assert measured.longest == [4, 7, 4]
        assert measured.empty == [1, 3, 1]

    def test_passes_every_batch_on_unchanged(self, feed):
        kept = _Kept()
        feed(Measured(kept, 3))
        as_rows = [(f, [list(r) for r in zip(*cols, strict=True)]) for f, cols in kept.arrays_seen]
        seen = kept.rows_seen or as_rows
        assert seen == [(1, BATCHES[0]), (3, BATCHES[1])]


def test_an_empty_batch_counts_nothing():
    measured = Measured(_Kept(), 2)
    measured.rows(1, [])
    measured.arrow(1, [pa.array([], pa.string()), pa.array([], pa.string())])
    assert (measured.longest, measured.empty) == ([0, 0], [0, 0])


def test_the_profile_has_the_longest_value_and_empty_cells_of_every_row(tmp_path, db_url):
    """The widest value and the only empty cells sit in the last of several batches (read by
    the Arrow reader on PostgreSQL): the profile counts them, and every value comes back."""
    settings = make_settings(tmp_path, db_url, ingest_batch_size=1000, arrow_min_bytes=0)
    db = open_db(settings)
    try:
        rows = [["id", "name", "note"]] + [[str(i), "ab", "x"] for i in range(5000)]
        rows += [["5000", "é" * 40, ""], ["5001", "", ""]]
        path = write_csv(tmp_path / "widths.csv", rows)
        result = load_file(db, settings, LoadRequest(path=path, table="widths"))
        t = db.catalog.tracking
        with db.read() as conn:
            profile = json.loads(
                conn.execute(sa.select(t.c.profile).where(t.c.id == result.tracking_id)).scalar_one()
            )
        columns = {c["name"]: c for c in profile["columns"]}
        assert [columns[n]["max_length"] for n in ("id", "name", "note")] == [4, 40, 1]
        assert [columns[n]["nulls"] for n in ("id", "name", "note")] == [0, 1, 2]
        assert export_rows(db, "widths") == rows
    finally:
        db.dispose()
