"""Scenario 1, aimed: kill -9 while the daemon is held at the exact step of a version's life.

Each test stalls a real daemon at one fault point (``REFDATA_FAULTS=<point>@N=sleep:60``),
waits for the line that says it stalled there, kills it with SIGKILL and starts a new daemon on
the same dropoff and database. Right after the kill the previous version must be live and whole
and the catalogue must match the tables; after the restart the half-loaded version tables are
gone, the files all settled once and every invariant of the campaign holds (`Campaign.check`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from backend.db.engine import Database
from backend.tracking import versions as catalogue
from tests.reliability.figures import Share
from tests.reliability.support import Campaign, Daemon, Drop, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.daemon]

SCENARIO = "1 crashes (kill -9)"
TABLE = "aimed"
#: Small batches, so that a file of a few hundred rows is written in several of them.
ENV = {"workers": 1, "ingest_batch_size": 100}
#: Longer than any test waits: the stalled daemon is killed long before it would go on.
STALL_SECONDS = 60

_PARTITIONS = sa.text(
    "SELECT c.relnamespace::regnamespace::text, c.relname FROM pg_catalog.pg_inherits i "
    "JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:parent AS regclass)"
)
_PARENTS = sa.text(
    "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relkind = 'p'"
)


@pytest.fixture
def aimed(tmp_path: Path, db_url: str, share: Share) -> Iterator[Campaign]:
    """A campaign on each engine the suite runs (SQLite and PostgreSQL)."""
    c = Campaign(tmp_path, db_url, share)
    try:
        yield c
    finally:
        c.close()


def kill_when_stalled(daemon: Daemon, point: str, share: Share, timeout: float = 45.0) -> None:
    """Wait until `daemon` logs that it stalled at `point`, then SIGKILL it there."""

    def stalled() -> bool:
        for line in daemon.log().splitlines():
            if "stalled at fault point" in line:
                record = json.loads(line)
                assert record["point"] == point, record
                return True
        assert daemon.alive(), f"{daemon.name} exited before stalling at {point}:\n{daemon.log()[-3000:]}"
        return False

    wait_until(stalled, timeout, f"{daemon.name} stalled at {point}")
    daemon.kill9()
    share.fault()


def load_through(c: Campaign, daemon: Daemon, n: int, rows: int) -> Drop:
    """Drop version `n` of TABLE (`rows` rows) and wait until the daemon has settled it."""
    daemon.wait_healthy(60)
    drop = c.drop_tagged("ref", "fullload", TABLE, n, rows)
    c.wait_settled(timeout=60)
    return drop


def live_versions(c: Campaign) -> list[tuple[str, int]]:
    """(file tag, rows) of what ``ref.<TABLE>`` shows a reader: one pair when it holds one version."""
    with c.db.read() as conn:
        found = conn.execute(sa.text(f'SELECT version, COUNT(*) FROM ref."{TABLE}" GROUP BY version')).all()
    return sorted((str(tag), int(n)) for tag, n in found)


def assert_live(c: Campaign, drop: Drop) -> None:
    """``ref.<TABLE>`` holds exactly `drop`'s file, every cell of it."""
    assert live_versions(c) == [(drop.version, drop.n_rows)]
    assert c._export_digest(TABLE) == (drop.digest, drop.n_rows)


def catalogue_problems(db: Database, *, loading_allowed: bool = False) -> list[str]:
    """Where the version catalogue and the tables that exist disagree (empty: they match)."""
    catalog = db.catalog
    own = {t.name for t in catalog.metadata.tables.values()}
    problems: list[str] = []
    with db.read() as conn:
        preparer = conn.dialect.identifier_preparer
        listed = [
            v
            for v in catalogue.all_versions(conn, db)
            if v.table_name == TABLE and v.state != catalogue.DROPPED
        ]
        inspector = sa.inspect(conn)
        found: set[tuple[str, str]] = set()
        for schema in (catalog.data_schema, catalog.backup_schema):
            parents = (
                {n for (n,) in conn.execute(_PARENTS, {"schema": schema})}
                if db.adapter.name == "postgresql"
                else set()
            )
            found |= {
                (schema, name)
                for name in inspector.get_table_names(schema=schema)
                if name not in own and name not in parents
            }
        places = {(v.object_schema, v.object_name) for v in listed}
        if places != found:
            problems.append(f"catalogue lists {sorted(places)}, tables are {sorted(found)}")
        current = [v for v in listed if v.state == catalogue.CURRENT]
        if len(current) != 1:
            problems.append(f"{len(current)} current versions: {current}")
        loading = [v for v in listed if v.state == catalogue.LOADING]
        if loading and not loading_allowed:
            problems.append(f"versions left loading: {[v.version for v in loading]}")
        for v in listed:
            if v.state == catalogue.LOADING or (v.object_schema, v.object_name) not in found:
                continue
            name = f"{preparer.quote_schema(v.object_schema)}.{preparer.quote(v.object_name)}"
            count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            if count != v.row_count:
                problems.append(f"version {v.version}: {count} rows, catalogue says {v.row_count}")
        if db.adapter.name == "postgresql" and current:
            live = f"{preparer.quote_schema(catalog.data_schema)}.{preparer.quote(TABLE)}"
            partitions = {(s, n) for s, n in conn.execute(_PARTITIONS, {"parent": live})}
            want = {(current[0].object_schema, current[0].object_name)}
            if partitions != want:
                problems.append(f"ref.{TABLE} has partitions {sorted(partitions)}, current is {want}")
    return problems


def restart_and_settle(c: Campaign, name: str, **env: object) -> Daemon:
    """Start a new daemon on the dead one's dropoff and wait until every file has settled."""
    daemon = c.daemon(name, **ENV, **env)
    daemon.wait_healthy(60)
    c.wait_settled(timeout=90)
    return daemon


def kill_during_second_fullload(
    c: Campaign, share: Share, point: str, name: str, rows: tuple[int, int]
) -> tuple[Drop, Drop, Any]:
    """Load v1, then kill the daemon stalled at `point` while it loads v2; v1 must still be live
    and the catalogue consistent (a `loading` entry allowed). Returns (v1, v2, a polling reader)."""
    first = c.daemon(name, **ENV, refdata_faults=f"{point}@2=sleep:{STALL_SECONDS}")
    v1 = load_through(c, first, 1, rows[0])
    reader = c.reader(interval=0.02)
    v2 = c.drop_tagged("ref", "fullload", TABLE, 2, rows[1])
    kill_when_stalled(first, point, share)
    assert_live(c, v1)
    assert catalogue_problems(c.db, loading_allowed=True) == []
    return v1, v2, reader


class TestKillWhileWritingTheNewVersion:
    def test_a_kill_mid_copy_leaves_the_previous_version_and_start_up_drops_the_half_table(
        self, aimed: Campaign, share: Share
    ) -> None:
        """Killed with rows of the new version sent but not committed: v1 stays live, the next
        daemon drops what SQLite had committed of v2, loads the file again and publishes it."""
        c = aimed
        # v1 is one batch: the first hit, which does not stall.
        _, v2, reader = kill_during_second_fullload(c, share, "write.batch", "w1", (1, 600))
        with c.db.read() as conn:
            half = catalogue.loading_versions(conn, c.db)
        # SQLite commits a new version batch by batch; PostgreSQL's died with its transaction.
        assert len(half) == (1 if c.db.adapter.commits_while_loading else 0)

        second = restart_and_settle(c, "w2")
        if half:
            assert "dropped a version its load never published" in second.log()
        assert catalogue_problems(c.db) == []
        assert_live(c, v2)
        c.check([second])
        assert reader.reads > 0
        share.survived()


class TestKillInsideTheSwap:
    def test_a_kill_between_moving_the_current_version_out_and_the_new_one_in_changes_nothing(
        self, aimed: Campaign, share: Share
    ) -> None:
        """Killed with the current version detached (PostgreSQL) or renamed away (SQLite) and the
        new one not in place: readers still see v1 whole, the restart publishes v2 whole."""
        c = aimed
        # The first publish of the table is the first hit; the second is v2's swap.
        _, v2, reader = kill_during_second_fullload(c, share, "publish.swap", "s1", (250, 400))
        with c.db.read() as conn:
            assert [v.version for v in catalogue.versions_of(conn, c.db, TABLE)] == [1]

        second = restart_and_settle(c, "s2")
        assert catalogue_problems(c.db) == []
        assert_live(c, v2)
        with c.db.read() as conn:
            states = [(v.version, v.state) for v in catalogue.versions_of(conn, c.db, TABLE)]
        assert states == [(1, catalogue.KEPT), (2, catalogue.CURRENT)]
        c.check([second])
        assert reader.reads > 0 and not reader.violations
        share.survived()


class TestKillInsideRetention:
    def test_a_kill_between_dropping_old_versions_keeps_every_version_until_the_next_run(
        self, aimed: Campaign, share: Share
    ) -> None:
        """Killed inside retention's transaction (one kept version's table dropped, the next's
        dropped but not yet marked): all four versions are still there and catalogued; the next
        daemon's retention drops the two oldest, tables and catalogue rows alike."""
        c = aimed
        loader = c.daemon("r1", **ENV)
        drops = [load_through(c, loader, n, 50 + n) for n in range(1, 5)]
        loader.terminate()

        pruner = c.daemon(
            "r2", **ENV, keep_versions=1, refdata_faults=f"retention.prune@2=sleep:{STALL_SECONDS}"
        )
        kill_when_stalled(pruner, "retention.prune", share)

        assert_live(c, drops[-1])
        assert catalogue_problems(c.db) == []
        with c.db.read() as conn:
            assert len(catalogue.versions_of(conn, c.db, TABLE)) == 4

        third = c.daemon("r3", **ENV, keep_versions=1)
        third.wait_healthy(60)

        def pruned() -> bool:
            with c.db.read() as conn:
                return len(catalogue.versions_of(conn, c.db, TABLE)) == 2

        # Retention runs five seconds after start-up.
        wait_until(pruned, 30, "retention dropped the oldest versions")
        assert catalogue_problems(c.db) == []
        assert_live(c, drops[-1])
        with c.db.read() as conn:
            every = catalogue.versions_of(conn, c.db, TABLE, include_dropped=True)
        assert [(v.version, v.state) for v in every] == [
            (1, catalogue.DROPPED),
            (2, catalogue.DROPPED),
            (3, catalogue.KEPT),
            (4, catalogue.CURRENT),
        ]
        c.check([third])
        share.survived()
