"""Loads through the Arrow reader and through the Python reader give the same tables."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.errors import FileRejectedError, RowError
from backend.load.loader import load_file
from backend.models import LoadRequest, LoadType
from tests.support import export_rows, make_settings, open_db, write_csv


def _rows(n: int) -> list[list[str]]:
    rng = random.Random(7)
    rows = [["id", "name", "amount", "flag", "when", "note"]]
    for i in range(n):
        rows.append(
            [
                str(i),
                rng.choice(["Ann", "Bo", "", "Zoë", 'say "hi"', "a,b", "two\nlines"]),
                f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}",
                rng.choice(["yes", "no"]),
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                rng.choice(["", "007", "NA", " padded ", "x" * rng.randint(0, 40)]),
            ]
        )
    return rows


def _staged(db, tracking_id: int) -> dict:
    events = db.catalog.events
    with db.read() as conn:
        details = conn.execute(
            sa.select(events.c.details).where(events.c.tracking_id == tracking_id, events.c.event == "staged")
        ).scalar_one()
    return json.loads(details)


def _profile(db, tracking_id: int) -> dict:
    t = db.catalog.tracking
    with db.read() as conn:
        profile = json.loads(conn.execute(sa.select(t.c.profile).where(t.c.id == tracking_id)).scalar_one())
    # Timings and the previous load's fingerprint differ by nature; the content must not.
    profile.pop("profile_ms")
    profile.pop("previous_fingerprint")
    return profile


def _load(tmp_path: Path, db_url: str, name: str, rows, *, python: bool, **request) -> tuple:
    # DECODE_ERRORS=replace changes nothing for valid UTF-8 but keeps the load on the Python reader.
    settings = make_settings(
        tmp_path / name,
        db_url,
        ingest_batch_size=700,
        arrow_min_bytes=0,  # these files are small; the Arrow reader must still take them
        **({"decode_errors": "replace"} if python else {}),
    )
    db = open_db(settings)
    path = write_csv(tmp_path / f"{name}.csv", rows)
    try:
        result = load_file(db, settings, LoadRequest(path=path, **request))
    except BaseException:
        db.dispose()
        raise
    return db, result


@pytest.mark.parametrize("policy", ["text", "infer"])
def test_both_readers_give_the_same_table_and_profile(tmp_path: Path, db_url: str, policy: str) -> None:
    from backend.models import TypePolicy

    rows = _rows(3000)
    loads = {}
    for python in (False, True):
        name = "python" if python else "arrow"
        db, result = _load(
            tmp_path, db_url, name, rows, python=python, table="t", type_policy=TypePolicy(policy)
        )
        loads[name] = (
            export_rows(db, "t"),
            _profile(db, result.tracking_id),
            _staged(db, result.tracking_id),
        )
        db.dispose()
    (a_rows, a_profile, a_staged), (p_rows, p_profile, p_staged) = loads["arrow"], loads["python"]
    assert a_staged["reader"] == "arrow" and p_staged["reader"] == "python"
    assert a_rows == p_rows == rows
    assert a_profile == p_profile
    assert a_staged["batches"] == p_staged["batches"] == 5


def test_a_ragged_row_late_in_the_file_reloads_in_python(tmp_path: Path, db_url: str) -> None:
    from backend.models import RaggedPolicy

    rows = _rows(3000)
    rows[2900] = [*rows[2900], "surplus"]
    db, result = _load(
        tmp_path, db_url, "ragged", rows, python=False, table="t", ragged_rows=RaggedPolicy.REPAIR
    )
    staged = _staged(db, result.tracking_id)
    assert staged["reader"] == "python" and "columns" in staged["arrow_refused"]
    assert result.rows_loaded == 3000
    assert len(staged["repaired_lines"]) == 1
    with pytest.raises(RowError, match="fields, the header has 6"):
        _load(tmp_path, db_url, "ragged2", rows, python=False, table="t2")
    db.dispose()


def test_misfits_end_the_same_way_on_both_readers(tmp_path: Path, db_url: str) -> None:
    """A typed table (inferred), then an append holding a value its INTEGER column cannot take:
    whatever the policy makes of it (refusal or a widened column), both readers do the same."""
    from backend.models import TypePolicy

    rows = _rows(3000)
    bad = [r[:] for r in rows]
    bad[2500][0] = "0x1"
    bad[2700][0] = "007"
    outcomes = []
    for python in (False, True):
        name = "python" if python else "arrow"
        db, _ = _load(
            tmp_path, db_url, name, rows, python=python, table=f"t_{name}", type_policy=TypePolicy.INFER
        )
        db.dispose()
        try:
            db, _result = _load(
                tmp_path, db_url, f"{name}2", bad, python=python, table=f"t_{name}", load_type=LoadType.APPEND
            )
        except FileRejectedError as exc:
            outcomes.append(str(exc).replace(f"{name}2.csv", "x.csv").replace(f"t_{name}", "t"))
            continue
        outcomes.append(export_rows(db, f"t_{name}"))
        db.dispose()
    assert outcomes[0] == outcomes[1]
    assert "0x1" in str(outcomes[0])


def test_files_below_arrow_min_bytes_stay_on_the_python_reader(tmp_path: Path, db_url: str) -> None:
    """A small file is read by the csv module (no pyarrow import, no memory pool) unless the
    threshold says otherwise; the same file over the threshold goes to Arrow."""
    rows = _rows(50)
    readers = []
    for threshold in (1024 * 1024, 0):
        settings = make_settings(tmp_path / str(threshold), db_url, arrow_min_bytes=threshold)
        db = open_db(settings)
        try:
            result = load_file(db, settings, LoadRequest(path=write_csv(tmp_path / "small.csv", rows)))
            readers.append(_staged(db, result.tracking_id)["reader"])
        finally:
            db.dispose()
    assert readers == ["python", "arrow"]


def test_a_record_longer_than_arrows_parse_block_is_read_whole(tmp_path: Path, db_url: str) -> None:
    """A record longer than one parse block (`BLOCK_BYTES`; each value within the csv module's
    field limit) is carried into the next block by Arrow's reader: read whole, by Arrow."""
    import csv

    from backend.load.arrow_csv import BLOCK_BYTES

    rows = _rows(2000)
    width = csv.field_size_limit() - 10
    for column in (1, 4, 5):
        rows[1500][column] = str(column) * width
    assert 3 * width > BLOCK_BYTES
    db, result = _load(tmp_path, db_url, "long", rows, python=False, table="t")
    staged = _staged(db, result.tracking_id)
    assert staged["reader"] == "arrow"
    assert export_rows(db, "t") == rows
    db.dispose()
