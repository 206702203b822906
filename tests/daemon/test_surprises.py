"""The daemon under ordinary surprises (issue 14): clocks, names, DNS, as a real subprocess."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon.support import REPO, Daemon, data_files, drop, query, wait_for

pytestmark = pytest.mark.daemon


def tables(d: Daemon) -> list[str]:
    rows = query(d.url, d.root, 'SELECT table_name, status FROM ref."File_Monitor_Tracking" ORDER BY id')
    return [r[0] for r in rows if r[1] == "loaded"]


class TestClocks:
    def test_a_file_dated_in_the_future_loads_and_is_logged_once(self, tmp_path: Path, db_url: str):
        """A file whose mtime is a day ahead loads after its checks; one warning says so."""
        d = Daemon(tmp_path, db_url, {"MIN_FILE_AGE_SECONDS": "0.5"}).start()
        try:
            d.wait_healthy()
            folder = d.folder("ref", "fullload")
            tmp = folder.parent / ".future.csv.part"
            tmp.write_text("code\nA\n")
            ahead = time.time() + 86_400
            os.utime(tmp, (ahead, ahead))
            os.replace(tmp, folder / "future.csv")
            wait_for(lambda: data_files(folder, "processed"), 30, what="future-dated file processed")
            assert tables(d) == ["future"]
            assert d.log().count("modification time is in the future") == 1
        finally:
            d.terminate()


class TestDatabaseNames:
    def test_a_database_host_that_does_not_resolve_is_waited_for(self, tmp_path: Path):
        """With an unresolvable host the daemon keeps retrying (name resolution), instead of exiting 1."""
        d = Daemon(tmp_path, "postgresql+psycopg://refdata@no-such-host.invalid:5432/refdata").start()
        try:
            wait_for(lambda: d.log().count("database unavailable at start-up") >= 2, 30, what="two retries")
            assert d.alive()
            assert "(name resolution)" in d.log()
            assert "refused the data" not in d.log()
        finally:
            d.terminate(timeout=60)


class TestNames:
    def test_files_named_in_other_scripts_load_into_three_tables(self, daemon: Daemon):
        """国家.csv, 货币.csv and Страны.csv each get their own table; none replaces another."""
        daemon.start().wait_healthy()
        folder = daemon.folder("ref", "fullload")
        for name, value in (("国家.csv", "CN"), ("货币.csv", "CNY"), ("Страны.csv", "RU")):
            drop(folder / name, f"code\n{value}\n")
        wait_for(lambda: len(data_files(folder, "processed")) == 3, 40, what="three files processed")
        names = tables(daemon)
        assert len(set(names)) == 3 and "table" not in names
        by_file = dict(
            query(daemon.url, daemon.root, 'SELECT file_name, table_name FROM ref."File_Monitor_Tracking"')
        )
        for name, value in (("国家.csv", "CN"), ("货币.csv", "CNY"), ("Страны.csv", "RU")):
            table = by_file[name]
            assert [r[0] for r in query(daemon.url, daemon.root, f"SELECT code FROM ref.{table}")] == [value]

    def test_system_column_names_load_and_export_under_their_header(self, daemon: Daemon):
        """Headers xmin, xmax, ctid load on every database and export gives the original header back."""
        from backend.db import open_database
        from tests.support import export_rows, make_settings

        daemon.start().wait_healthy()
        folder = daemon.folder("ref", "fullload")
        drop(folder / "boxes.csv", "id,xmin,xmax,ymin,ymax,ctid\n1,0.5,1.5,2,3,a\n")
        wait_for(lambda: data_files(folder, "processed") or data_files(folder, "error"), 30, what="settled")
        assert data_files(folder, "error") == []
        db = open_database(make_settings(daemon.root, daemon.url))
        try:
            assert export_rows(db, "boxes") == [
                ["id", "xmin", "xmax", "ymin", "ymax", "ctid"],
                ["1", "0.5", "1.5", "2", "3", "a"],
            ]
            columns = export_rows(db, "boxes", sql_names=True)[0]
        finally:
            db.dispose()
        if daemon.url.startswith("postgresql"):
            assert columns == ["id", "xmin_2", "xmax_2", "ymin", "ymax", "ctid_2"]
        assert all(re.fullmatch(r"[a-z0-9_]+", c) for c in columns)


def cli(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m backend ARGS` as a separate process, with the daemon's settings."""
    env = {**d.environment(), "HEALTH_ENABLED": "false", "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "backend", "--env-file", "/nonexistent/.env", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestRetry:
    def test_retry_refuses_the_sidecar_and_moves_the_file_with_it(self, tmp_path: Path, db_url: str):
        """retry of a sidecar is refused (both stay put); retry of the file loads it, its sidecar along."""
        config = tmp_path / "config"
        config.mkdir()  # CONFIG_DIR must exist (a typo in it is refused at start-up)
        d = Daemon(tmp_path, db_url, {"CONFIG_DIR": str(config)}).start()
        try:
            d.wait_healthy()
            folder = d.folder("noref", "append")
            drop(folder / "ragged.csv", "a,b\n1,2\n3,4,5\n")
            wait_for(lambda: data_files(folder, "error"), 30, what="ragged file in error/")
            moved = data_files(folder, "error")[0]
            sidecar = moved.with_name(moved.name + ".error.json")
            wait_for(sidecar.exists, 10, what="sidecar")
            refused = cli(d, "retry", str(sidecar))
            assert refused.returncode == 1 and "retry the file itself" in refused.stderr
            assert moved.exists() and sidecar.exists() and not (folder / "ragged.csv.error.json").exists()
            elsewhere = tmp_path / "other" / "error"
            elsewhere.mkdir(parents=True)
            (elsewhere / "x.csv").write_text("a\n1\n")
            refused = cli(d, "retry", str(elsewhere / "x.csv"))
            assert refused.returncode == 1 and "not in an error/ folder of the dropoff" in refused.stderr
            (config / "tables").mkdir(parents=True)
            (config / "tables" / "ragged.yaml").write_text("ragged_rows: repair\n")
            done = cli(d, "retry", str(moved))
            assert done.returncode == 0, done.stderr
            wait_for(lambda: data_files(folder, "processed"), 30, what="retried file loaded")
            loaded = data_files(folder, "processed")[0]
            previous = loaded.with_name(loaded.name + ".previous.error.json")
            wait_for(previous.exists, 10, what="the earlier sidecar beside the loaded file")
            assert "line 3" in json.loads(previous.read_text())["reason"]
            assert [p for p in folder.iterdir() if p.is_file()] == []
        finally:
            d.terminate()


class TestOneFolderOneDatabase:
    def test_a_daemon_of_another_database_refuses_the_folder(self, tmp_path: Path, db_url: str):
        """A second daemon with another DATABASE_URL exits 2 saying why; files load once, into the first."""
        first = Daemon(tmp_path, db_url, name="d1").start()
        try:
            first.wait_healthy()
            other_url = f"sqlite:///{tmp_path / 'other.db'}"
            second = Daemon(tmp_path, other_url, {"DATA_DIR": str(tmp_path / "data2")}, name="d2").start()
            assert second.proc is not None and second.proc.wait(60) == 2
            assert "belongs to another database" in second.log() and "delete the marker" in second.log()
            folder = first.folder("ref", "fullload")
            drop(folder / "once.csv", "a\n1\n")
            wait_for(lambda: data_files(folder, "processed"), 30, what="file processed by the first daemon")
            rows = query(first.url, first.root, 'SELECT status, moved_to FROM ref."File_Monitor_Tracking"')
            assert len(rows) == 1 and rows[0][0] == "loaded" and rows[0][1]
            marker = json.loads((first.dropoff / ".refdata-monitor.json").read_text())
            assert marker["daemon"] and marker["schema"] == "ref" and "other.db" not in marker["database"]
        finally:
            first.terminate()

    def test_a_second_daemon_of_the_same_database_may_share_the_folder(self, tmp_path: Path, db_url: str):
        """Same database, another spelling of its URL: the second daemon starts and both serve the folder."""
        first = Daemon(tmp_path, db_url, name="d1").start()
        if db_url.startswith("sqlite:///"):
            path = Path(db_url.removeprefix("sqlite:///"))
            spelled = f"sqlite:///{path.parent}/./{path.name}"
        else:
            spelled = db_url.replace("postgresql+psycopg://", "postgresql://")
        assert spelled != db_url
        second = Daemon(tmp_path, spelled, name="d2").start()
        try:
            first.wait_healthy()
            second.wait_healthy()
            assert first.alive() and second.alive()
        finally:
            first.terminate()
            second.terminate()


def drop_together(folder: Path, files: dict[str, str]) -> None:
    """Write every file under a hidden name first, then rename them all in at once (random order)."""
    staged = []
    for name, text in files.items():
        tmp = folder.parent / f".{name}.part"
        tmp.write_text(text)
        staged.append((tmp, folder / name))
    random.shuffle(staged)
    for tmp, final in staged:
        os.replace(tmp, final)


def loads_of(d: Daemon, table: str) -> list[tuple]:
    return [
        tuple(r)
        for r in query(
            d.url,
            d.root,
            "SELECT file_name, status, created_at, processed_at, backup_version "
            f"FROM ref.\"File_Monitor_Tracking\" WHERE table_name = '{table}' ORDER BY processed_at, id",
        )
    ]


class TestOrder:
    ROUNDS = 20
    FILES = 10

    def test_fullloads_of_one_table_apply_in_stamp_order_and_the_newest_wins(
        self, tmp_path: Path, db_url: str
    ):
        """10 files of one table dropped at once (WORKERS=4), 20 rounds: one at a time, oldest stamp first."""
        d = Daemon(tmp_path, db_url, {"WORKERS": "4"}).start()
        try:
            d.wait_healthy()
            folder = d.folder("ref", "fullload")
            rng = random.Random(14)
            for batch in range(0, self.ROUNDS, 5):
                rounds = range(batch, batch + 5)
                files: dict[str, str] = {}
                for r in rounds:
                    days = rng.sample(range(1, 29), self.FILES)
                    files.update({f"rates_r{r}_2024-02-{day:02d}.csv": f"day\n{day}\n" for day in days})
                drop_together(folder, files)
                # mtimes run against the stamps: the stamp, not the mtime, decides
                for i, name in enumerate(sorted(files, reverse=True)):
                    os.utime(folder / name, (1_700_000_000 + i, 1_700_000_000 + i))
                expected = len(files) * (batch // 5 + 1)
                wait_for(
                    lambda n=expected: len(data_files(folder, "processed")) >= n,
                    120,
                    what=f"rounds {batch}..{batch + 4} processed",
                )
                for r in rounds:
                    table = f"rates_r{r}"
                    loads = loads_of(d, table)
                    stamps = [name.rsplit("_", 1)[1] for name, *_ in loads]
                    assert [row[1] for row in loads] == ["loaded"] * self.FILES
                    assert stamps == sorted(stamps), f"round {r} applied out of order: {stamps}"
                    for before, after in itertools.pairwise(loads):
                        assert after[2] >= before[3], f"round {r}: two loads of {table} overlapped"
                    newest = max(int(s[8:10]) for s in stamps)
                    assert [x[0] for x in query(d.url, d.root, f"SELECT day FROM ref.{table}")] == [
                        str(newest)
                    ]
        finally:
            d.terminate()

    def test_an_older_file_arriving_late_is_kept_as_a_version_only(self, tmp_path: Path, db_url: str):
        """A late older file goes to bkp only, the table keeps the newer; last_arrival lets it win."""
        config = tmp_path / "config"
        config.mkdir()  # CONFIG_DIR must exist (a typo in it is refused at start-up)
        d = Daemon(tmp_path, db_url, {"CONFIG_DIR": str(config)}).start()
        try:
            d.wait_healthy()
            folder = d.folder("ref", "fullload")
            for table in ("countries", "cities"):
                drop(folder / f"{table}_2024-01-03.csv", "v\n3\n")
                wait_for(
                    lambda t=table: any(t in p.name for p in data_files(folder, "processed")), 30, what=table
                )
            (config / "tables").mkdir(parents=True)
            (config / "tables" / "cities.yaml").write_text("fullload_wins: last_arrival\n")
            for table in ("countries", "cities"):
                drop(folder / f"{table}_2024-01-01.csv", "v\n1\n")
            wait_for(lambda: len(data_files(folder, "processed")) == 4, 30, what="late files processed")
            assert [r[0] for r in query(d.url, d.root, "SELECT v FROM ref.countries")] == ["3"]
            assert [r[0] for r in query(d.url, d.root, "SELECT v FROM ref.cities")] == ["1"]
            late = loads_of(d, "countries")[-1]
            # Versions count per table in load order: the newer file was version 1, this one is 2.
            assert late[0] == "countries_2024-01-01.csv" and late[1] == "loaded" and late[4] == 2
            ((schema, name),) = query(
                d.url,
                d.root,
                'SELECT object_schema, object_name FROM ref."File_Monitor_Versions" '
                "WHERE table_name = 'countries' AND version = 2 AND state = 'kept'",
            )
            assert [r[0] for r in query(d.url, d.root, f'SELECT v FROM {schema}."{name}"')] == ["1"]
            assert "version only" in d.log()
        finally:
            d.terminate()


def big_csv(tag: str, megabytes: int = 50) -> bytes:
    """About `megabytes` MB of reference data whose every row carries `tag` (5 characters)."""
    row = "{i},TAG00,Reference item number {i:08d} with a longish description,{v}.25,2024-01-31,true\n"
    block = "".join(row.format(i=i, v=i % 977) for i in range(10_000)).encode()
    body = block * max(1, megabytes * 1024 * 1024 // len(block))
    return b"id,tag,name,value,day,flag\n" + body.replace(b"TAG00", tag.encode())


def table_state(d: Daemon) -> tuple:
    return tuple(query(d.url, d.root, "SELECT COUNT(*), MIN(tag), MAX(tag) FROM ref.big")[0])


def cancel_rounds(tmp_path: Path, db_url: str, rounds: int, seed: int) -> list[str]:
    """Drop a 50 MB fullload per round and cancel it at a random instant; returns the outcomes."""
    rng = random.Random(seed)
    d = Daemon(tmp_path, db_url).start()
    outcomes = []
    try:
        d.wait_healthy()
        folder = d.folder("ref", "fullload")
        drop(folder / "big.csv", "id,tag,name,value,day,flag\n1,START,x,1.25,2024-01-31,true\n")
        wait_for(lambda: data_files(folder, "processed"), 30, what="baseline loaded")
        for r in range(rounds):
            before = table_state(d)
            settled = len(data_files(folder, "processed")) + len(data_files(folder, "error"))
            tmp = folder.parent / ".big.csv.part"
            tmp.write_bytes(big_csv(f"R{r:04d}"))
            os.replace(tmp, folder / "big.csv")
            ids = wait_for(
                lambda: query(
                    d.url,
                    d.root,
                    'SELECT id FROM ref."File_Monitor_Tracking" '
                    "WHERE status = 'processing' AND file_name = 'big.csv'",
                ),
                60,
                what="the 50 MB load running",
            )
            time.sleep(rng.uniform(0.0, 6.0))
            result = cli(d, "cancel", str(ids[0][0]))
            wait_for(
                lambda n=settled: len(data_files(folder, "processed")) + len(data_files(folder, "error")) > n,
                120,
                what="the 50 MB file settled",
            )
            status = query(
                d.url, d.root, f'SELECT status FROM ref."File_Monitor_Tracking" WHERE id = {ids[0][0]}'
            )
            if result.returncode == 0 and result.stdout.startswith("cancelled"):
                assert status[0][0] == "cancelled"
                assert table_state(d) == before, f"round {r}: a cancelled load changed the table"
                outcomes.append("cancelled")
            else:
                assert result.returncode == 1 and "too late" in result.stderr, (result.stdout, result.stderr)
                assert status[0][0] == "loaded"
                count, low, high = table_state(d)
                assert low == high == f"R{r:04d}" and count > 100_000
                outcomes.append("too late")
    finally:
        d.terminate()
    return outcomes


class TestCancel:
    def test_a_cancel_at_a_random_instant_is_honoured_or_too_late(self, tmp_path: Path, db_url: str):
        """Cancels at random instants of a 50 MB load: cancelled with the table unchanged, or "too late"."""
        outcomes = cancel_rounds(tmp_path, db_url, rounds=2, seed=1414)
        assert len(outcomes) == 2

    @pytest.mark.soak
    @pytest.mark.timeout(1800)
    def test_many_cancels_at_random_instants(self, tmp_path: Path, db_url: str):
        """Soak: 20 rounds of the same, both outcomes seen."""
        outcomes = cancel_rounds(tmp_path, db_url, rounds=20, seed=14)
        assert set(outcomes) == {"cancelled", "too late"}

    def test_a_cancel_after_the_commit_says_too_late(self, daemon: Daemon):
        """Cancelling a load that already committed exits 1 with "too late: load N was already committed"."""
        daemon.start().wait_healthy()
        folder = daemon.folder("ref", "fullload")
        drop(folder / "small.csv", "a\n1\n")
        wait_for(lambda: data_files(folder, "processed"), 30, what="loaded")
        result = cli(daemon, "cancel", "1")
        assert result.returncode == 1 and "too late: load 1 was already committed" in result.stderr
