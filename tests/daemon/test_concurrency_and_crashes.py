"""Two daemons on one dropoff and database, and kill -9 at several points followed by a restart."""

from __future__ import annotations

import random
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.daemon.support import Daemon, data_files, drop, query, wait_for

pytestmark = pytest.mark.daemon


def append_file(n: int, rows: int) -> str:
    return "batch,seq,payload\n" + "".join(f"{n},{i},{'x' * 20}\n" for i in range(rows))


def stream_name(n: int) -> str:
    """stream_<date>.csv: the date stamp is stripped, so every file goes to table `stream`."""
    return f"stream_{date(2024, 1, 1) + timedelta(days=n):%Y%m%d}.csv"


def check_invariants(d: Daemon, folder: Path, expected: dict[str, int]) -> None:
    """Each file processed exactly once; the append table holds each file's rows exactly once."""
    processed = data_files(folder, "processed")
    errors = data_files(folder, "error")
    assert not errors, [p.name for p in errors]
    names = sorted(p.name.split("_", 2)[2] for p in processed)
    assert names == sorted(expected), names
    counts = dict(query(d.url, d.root, "SELECT batch, COUNT(*) FROM ref.stream GROUP BY batch"))
    assert {int(k): int(v) for k, v in counts.items()} == {
        n: rows for n, (name, rows) in enumerate(expected.items())
    }
    stuck = query(
        d.url, d.root, "SELECT COUNT(*) FROM ref.\"File_Monitor_Tracking\" WHERE status = 'processing'"
    )
    assert stuck[0][0] == 0


class TestTwoDaemons:
    def test_two_daemons_never_load_a_file_twice(self, tmp_path: Path, db_url: str):
        """Two daemons on the same folder and database load each of 20 append files exactly once."""
        a = Daemon(tmp_path, db_url, {"WORKERS": "2"}, name="a").start()
        b = Daemon(tmp_path, db_url, {"WORKERS": "2"}, name="b").start()
        try:
            a.wait_healthy()
            b.wait_healthy()
            folder = a.folder("noref", "append")
            expected = {}
            for n in range(20):
                name = stream_name(n)
                drop(folder / name, append_file(n, 50))
                expected[name] = 50
            wait_for(lambda: len(data_files(folder, "processed")) == 20, 90, what="20 files processed")
            time.sleep(1)
            check_invariants(a, folder, expected)
            loaded = query(
                a.url, a.root, "SELECT COUNT(*) FROM ref.\"File_Monitor_Tracking\" WHERE status = 'loaded'"
            )[0][0]
            assert loaded == 20
        finally:
            a.terminate()
            b.terminate()


class TestKillNine:
    def test_kill_9_at_random_instants_keeps_every_invariant(self, tmp_path: Path, db_url: str):
        """Kill -9 during a stream of append drops, restart each time: every file is loaded exactly once."""
        rng = random.Random(20261122)
        folder = Daemon(tmp_path, db_url).folder("noref", "append")
        folder.mkdir(parents=True, exist_ok=True)
        expected: dict[str, int] = {}
        for round_ in range(5):
            d = Daemon(
                tmp_path, db_url, {"WORKERS": "2", "INGEST_BATCH_SIZE": "500"}, name=f"k{round_}"
            ).start()
            for i in range(3):
                n = round_ * 3 + i
                rows = rng.choice([10, 2000, 8000])
                drop(folder / stream_name(n), append_file(n, rows))
                expected[stream_name(n)] = rows
            time.sleep(rng.uniform(0.3, 2.0))
            d.kill9()
        final = Daemon(tmp_path, db_url, {"WORKERS": "2"}, name="final").start()
        try:
            wait_for(
                lambda: len(data_files(folder, "processed")) == len(expected),
                120,
                what="all files processed after restart",
            )
            time.sleep(0.5)
            check_invariants(final, folder, expected)
        finally:
            final.terminate()
