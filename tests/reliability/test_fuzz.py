"""Scenario 6: hypothesis-generated CSV bytes through detection and load: no crash, no partial table.

Each example writes one file (random delimiter, quoting, line ending, encoding, ragged rows,
embedded newlines and quotes, sometimes spliced with random bytes or replaced by random bytes)
and loads it with `load_file`, as the daemon does, into either a table of its own or a shared
table that earlier examples loaded. Whatever the bytes: the load succeeds or raises one of the
product's own errors (never one wrapped as an internal ``bug``), a failed load leaves the table
exactly as it was, a successful one leaves exactly its rows, and the tracking row is closed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from backend.errors import IngestError
from backend.load.loader import load_file
from backend.models import LoadRequest, LoadType
from tests.reliability import figures
from tests.support import make_settings, open_db

pytestmark = [pytest.mark.reliability]

SCENARIO = "6 fuzzing"
#: Characters that matter to CSV parsing, drawn more often than chance would. NUL bytes come from
#: the byte-level mutations, so that not every other file is refused as binary.
SPECIAL = [*",;\t|\"'\n\r \\=-", "\u00e9", "\u20ac", "\ufeff"]

cells = st.text(
    alphabet=st.sampled_from(SPECIAL) | st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
    max_size=10,
)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """Bytes of a CSV-like file, and how they were made (shown when an example fails)."""
    width = draw(st.integers(1, 6))
    ragged = draw(st.booleans())
    rows = draw(
        st.lists(
            st.lists(cells, min_size=1 if ragged else width, max_size=width + 2 if ragged else width),
            min_size=0,
            max_size=15,
        )
    )
    header = draw(st.lists(cells, min_size=width, max_size=width)) if draw(st.booleans()) else []
    delimiter = draw(st.sampled_from([",", ";", "\t", "|", ":", " "]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]))
    terminator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1", "utf-32"]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=terminator, escapechar="\\")
    for row in ([header] if header else []) + rows:
        try:
            writer.writerow(row)
        except csv.Error:  # QUOTE_NONE cannot write some rows: write them raw, as a sloppy exporter would
            out.write(delimiter.join(row) + terminator)
    data = out.getvalue().encode(encoding, errors="replace")
    how = {"delimiter": delimiter, "quoting": quoting, "terminator": terminator, "encoding": encoding}
    mutation = draw(st.sampled_from(["none", "none", "splice", "truncate", "random"]))
    if mutation == "splice" and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif mutation == "truncate" and data:
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == "random":
        data = draw(st.binary(max_size=300))
    how["mutation"] = mutation
    return data, how


def table_state(db: Any, table: str) -> tuple[int, str] | None:
    """Row count and a checksum of every cell of ``ref.<table>``, or None if it does not exist."""
    with db.engine.connect() as conn:
        if not sa.inspect(conn).has_table(table, schema="ref"):
            return None
        t = sa.Table(table, sa.MetaData(), schema="ref", autoload_with=conn)
        rows = conn.execute(sa.select(t).order_by(t.c._load_id, t.c._row_number)).all()
    digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    return len(rows), digest


def load_ids(db: Any, table: str) -> list[int]:
    with db.engine.connect() as conn:
        return [int(v) for (v,) in conn.execute(sa.text(f'SELECT DISTINCT _load_id FROM ref."{table}"'))]


def tracking_status(db: Any, tracking_id: int) -> str:
    with db.engine.connect() as conn:
        return str(
            conn.execute(
                sa.text('SELECT status FROM ref."File_Monitor_Tracking" WHERE id = :id'), {"id": tracking_id}
            ).scalar()
        )


def run_fuzz(tmp_path: Path, url: str, examples: int) -> None:
    share = figures.Share(SCENARIO)
    settings = make_settings(tmp_path, url)
    db = open_db(settings)
    counter = {"n": 0, "loaded": 0, "refused": 0, "rows": 0}
    try:

        @seed(6_006)
        @hyp_settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            file=csv_files(),
            load_type=st.sampled_from([LoadType.FULLLOAD, LoadType.APPEND]),
            shared=st.booleans(),
        )
        def one(file: tuple[bytes, dict[str, Any]], load_type: LoadType, shared: bool) -> None:
            data, how = file
            counter["n"] += 1
            table = f"fuzz_shared_{load_type.value}" if shared else f"fuzz_{counter['n']}"
            path = tmp_path / f"in_{counter['n']}.csv"
            path.write_bytes(data)
            before = table_state(db, table)
            try:
                result = load_file(db, settings, LoadRequest(path=path, load_type=load_type, table=table))
            except IngestError as exc:
                assert exc.stage != "bug", f"unhandled error for {how}: {exc}"
                assert table_state(db, table) == before, f"a refused load changed the table ({how}): {exc}"
                tracking_id = exc.details.get("tracking_id")
                if tracking_id is not None:
                    assert tracking_status(db, tracking_id) in ("error", "retry"), how
                counter["refused"] += 1
                return
            after = table_state(db, table)
            assert after is not None
            assert tracking_status(db, result.tracking_id) == "loaded"
            ids = load_ids(db, table)
            if load_type is LoadType.FULLLOAD:
                assert after[0] == result.rows_loaded, how
                assert ids == [result.tracking_id] or (result.rows_loaded == 0 and ids == []), (ids, how)
            else:
                assert after[0] == (before[0] if before else 0) + result.rows_loaded, how
            counter["loaded"] += 1
            counter["rows"] += result.rows_loaded

        one()
    finally:
        db.dispose()
        share.hostile(counter["n"])
        share.scenario.add(rows_checked=counter["rows"])
    share.note(
        f"{counter['n']} generated files on {url.split(':')[0].split('+')[0]}: {counter['loaded']} loaded, "
        f"{counter['refused']} refused with a reason; no unhandled error, no partial table"
    )


class TestFuzz:
    @pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
    def test_generated_csv_bytes_never_crash_the_load_nor_leave_a_partial_table(
        self, tmp_path, engine, request
    ):
        """Random CSV bytes are loaded or refused with a reason; no crash of the load, no partial table."""
        # SQLite on a RAM disk when there is one: its per-commit fsync is not what is being fuzzed.
        shm = Path("/dev/shm")
        root = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
        try:
            url = f"sqlite:///{root / 'fuzz.db'}" if engine == "sqlite" else request.getfixturevalue("pg_url")
            examples = 1500 if request.config.getoption("--soak") else (100 if engine == "sqlite" else 50)
            run_fuzz(root, url, examples)
        finally:
            if root != tmp_path:
                shutil.rmtree(root, ignore_errors=True)
