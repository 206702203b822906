"""The first pass of ``--types infer``: Arrow batches where the Arrow reader may read the file,
the Python reader otherwise or after a refusal, and the same column types either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.load import type_pass
from backend.load.loader import load_file
from backend.models import ColumnKind, LoadRequest, RaggedPolicy, TypePolicy
from backend.tracking.rows import types_of_load
from tests.load.test_arrow_path import _staged
from tests.support import make_settings, open_db, write_csv

HEADER = ["id", "big", "amount", "flag", "day", "stamp", "code", "zip", "late", "name", "ambiguous", "proof"]
#: What infer decides for each column of `_rows`.
KINDS = {
    "id": ColumnKind.INTEGER,
    "big": ColumnKind.BIGINT,
    "amount": ColumnKind.DECIMAL,
    "flag": ColumnKind.BOOLEAN,
    "day": ColumnKind.DATE,
    "stamp": ColumnKind.DATETIME,
    "code": ColumnKind.TEXT,  # NA among integers
    "zip": ColumnKind.TEXT,  # 007
    "late": ColumnKind.TEXT,  # numeric except in the last row
    "name": ColumnKind.TEXT,
    "ambiguous": ColumnKind.DATE,  # day-first, as the proof column shows
    "proof": ColumnKind.DATE,
}


def _rows(n: int) -> list[list[str]]:
    rows = [HEADER]
    for i in range(n):
        rows.append(
            [
                str(i),
                str(2**40 + i),
                f"{i * 7 % 100000}.{i % 100:02d}" if i % 9 else "",
                "Yes" if i % 3 else "No",
                f"20{i % 30:02d}-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                "2024-02-29T10:00:00" if i == n // 2 else f"2023-{i % 12 + 1:02d}-01T{i % 24:02d}:00:59",
                "NA" if i == n // 3 else str(i % 50),
                f"{i % 1000:03d}",
                "n/a" if i == n - 1 else str(i),
                ["Zoë", "Ødegård 😀", "plain", 'say "hi", then\nleave'][i % 4],
                f"{i % 12 + 1:02d}/{i % 12 + 1:02d}/2024",
                f"{i % 28 + 1:02d}/{i % 12 + 1:02d}/2024",
            ]
        )
    return rows


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The type passes each load runs, in order ("arrow", "arrow refused", "python"); the Arrow
    pass reads batches of 700 rows, so a file of a few thousand rows spans several."""
    ran: list[str] = []
    arrow, python = type_pass.arrow_pass, type_pass.python_pass

    def arrow_spy(*args, **kwargs):
        ran.append("arrow")
        try:
            return arrow(*args, **kwargs)
        except type_pass.ArrowRefusedError:
            ran.append("arrow refused")
            raise

    def python_spy(*args, **kwargs):
        ran.append("python")
        return python(*args, **kwargs)

    monkeypatch.setattr(type_pass, "arrow_pass", arrow_spy)
    monkeypatch.setattr(type_pass, "python_pass", python_spy)
    monkeypatch.setattr(type_pass, "ARROW_PASS_ROWS", 700)
    return ran


def _load(tmp_path: Path, db_url: str, name: str, path: Path, *, arrow: bool, **request):
    settings = make_settings(
        tmp_path / name,
        db_url,
        ingest_batch_size=500,
        # The file is small: from 0 bytes on Arrow may read it; past its size it may not.
        arrow_min_bytes=0 if arrow else 1 << 40,
    )
    db = open_db(settings)
    try:
        result = load_file(db, settings, LoadRequest(path=path, type_policy=TypePolicy.INFER, **request))
        with db.read() as conn:
            types = types_of_load(conn, db, result.tracking_id)
        return result, types, _staged(db, result.tracking_id)
    finally:
        db.dispose()


class TestTypePass:
    def test_arrow_pass_gives_the_python_pass_types(self, tmp_path: Path, db_url: str, passes) -> None:
        """Through the Arrow batches a file gets exactly the types the row-by-row pass gives it."""
        path = write_csv(tmp_path / "typed.csv", _rows(3000))
        _, by_arrow, staged = _load(tmp_path, db_url, "arrow", path, arrow=True, table="t")
        assert passes == ["arrow"]
        passes.clear()
        _, by_python, _ = _load(tmp_path, db_url, "python", path, arrow=False, table="t2")
        assert passes == ["python"]
        assert by_arrow == by_python
        assert {name: t.kind for name, t in by_arrow.items()} == KINDS
        assert by_arrow["ambiguous"].date_format == "%d/%m/%Y"
        assert (by_arrow["flag"].true_text, by_arrow["amount"].scale) == ("Yes", 2)
        assert staged["reader"] in ("arrow", "python")  # the load itself: as the database takes it
        assert "arrow_refused" not in staged

    def test_an_ineligible_dialect_is_passed_in_python(self, tmp_path: Path, db_url: str, passes) -> None:
        """A dialect the Arrow reader does not read exactly (spaces after the delimiter) gets
        its types from the Python reader, which skips the spaces."""
        lines = ["id, amount, day"] + [f"{i}, {i}.50, 2024-01-{i % 28 + 1:02d}" for i in range(2000)]
        path = tmp_path / "spaced.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        result, types, _ = _load(tmp_path, db_url, "spaced", path, arrow=True, table="t")
        assert passes == ["python"]
        assert result.rows_loaded == 2000
        assert [types[c].kind for c in ("id", "amount", "day")] == [
            ColumnKind.INTEGER,
            ColumnKind.DECIMAL,
            ColumnKind.DATE,
        ]

    def test_a_refusal_part_way_restarts_the_pass_in_python(
        self, tmp_path: Path, db_url: str, passes
    ) -> None:
        """A ragged row after several Arrow batches restarts the pass on the Python reader: the
        file loads (repaired) with the Python pass's types, and the load reads in Python at once."""
        rows = _rows(3000)
        rows[2900] = rows[2900][:-1]  # repaired: the missing cell is empty
        path = write_csv(tmp_path / "ragged.csv", rows)
        result, by_retry, staged = _load(
            tmp_path, db_url, "ragged", path, arrow=True, table="t", ragged_rows=RaggedPolicy.REPAIR
        )
        assert passes == ["arrow", "arrow refused", "python"]
        assert result.rows_loaded == 3000
        assert staged["reader"] == "python" and "columns" in staged["arrow_refused"]
        passes.clear()
        _, by_python, _ = _load(
            tmp_path, db_url, "ragged-python", path, arrow=False, table="t2", ragged_rows=RaggedPolicy.REPAIR
        )
        assert passes == ["python"]
        assert by_retry == by_python
        assert by_retry["id"].kind is ColumnKind.INTEGER
