"""Scenario 2: the PostgreSQL server stops, times out, is locked or refuses writes; the daemon copes."""

from __future__ import annotations

import random
import time

import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.conftest import PgServer
from tests.reliability.support import Campaign, Daemon, admin, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.daemon, pytest.mark.postgres]

SCENARIO = "2 database faults"


def outage_seconds(request: pytest.FixtureRequest, rng: random.Random) -> float:
    """5 s in CI; 5 to 30 s with --soak."""
    return rng.uniform(5, 30) if request.config.getoption("--soak") else 5.0


def ride_out(d: Daemon, seconds: float, what: str = "database") -> dict:
    """Poll the daemon for `seconds` (or until /readyz reports the failure, if `seconds` is 0).

    /healthz must stay 200 throughout, and /readyz must report the failing check.
    """
    seen: dict = {}
    deadline = time.monotonic() + (seconds or 60)
    while time.monotonic() < deadline and not (seen and not seconds):
        assert d.get("/healthz")[0] == 200, "liveness must not depend on the database"
        code, body = d.get_json("/readyz")
        if code == 503 and body["checks"][what]["status"] == "fail":
            seen = body["checks"][what]
        time.sleep(0.2)
    assert seen, f"/readyz never reported the {what} failure"
    return seen


def terminate_sessions(url: str) -> None:
    """Cut the daemon's connections so that new sessions see a changed database setting."""
    name = make_url(url).database
    with admin(url, "postgres") as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'refdata-monitor'",
            (name,),
        )


class TestServerOutage:
    def test_server_stopped_during_a_load_and_while_idle(
        self, campaign: Campaign, pg_server: PgServer, share, request
    ):
        """The server stops mid-load and while idle; once back, every file is loaded once, none in half."""
        rng = random.Random(2_001)
        d = campaign.daemon("db", workers=2, ingest_batch_size=5000)
        d.wait_healthy()
        reader = campaign.reader()
        campaign.drop_tagged("ref", "fullload", "outage_full", 0, 300)
        campaign.wait_settled()

        # 1. During a load: a large fullload (the old version must stay whole) and a large append.
        campaign.drop_tagged("ref", "fullload", "outage_full", 1, 80_000, payload_bytes=40)
        campaign.drop_tagged("noref", "append", "outage_app", 2, 80_000, payload_bytes=40)
        wait_for(lambda: campaign.processing(), 60, interval=0.05, what="a load in progress")
        time.sleep(0.3)
        pg_server.stop()
        share.fault()
        seen = ride_out(d, outage_seconds(request, rng))
        assert "unavailable" in seen["output"] or "connect" in seen["output"], seen
        pg_server.start()
        campaign.wait_settled(timeout=180)
        campaign.check([d])

        # 2. While idle, with files arriving during the outage.
        pg_server.stop()
        share.fault()
        for n in range(3, 6):
            campaign.drop_tagged("noref", "fullload", f"idle_{n}", n, 50)
        ride_out(d, outage_seconds(request, rng))
        pg_server.start()
        campaign.wait_settled(timeout=120)
        outcome = campaign.check([d])
        assert outcome.statuses["loaded"] == 6
        attempts = outcome.statuses["retry"] + outcome.statuses["interrupted"]
        share.note(
            f"server stopped twice (mid-load, idle): {attempts} attempts closed as retry/interrupted, "
            f"{reader.reads:,} reads of the fullload table during the run saw only whole versions"
        )
        share.survived()


class TestLocksAndTimeouts:
    def test_lock_on_the_target_table_waits_then_times_out_with_a_statement_timeout(
        self, campaign: Campaign, share
    ):
        """A lock held by another session makes the load wait (with a statement timeout: retry), then load."""
        d = campaign.daemon("lock", workers=2)
        d.wait_healthy()
        campaign.drop_tagged("ref", "fullload", "locked", 0, 200)
        campaign.wait_settled()
        with admin(campaign.url) as holder:
            # Without a statement timeout the load simply waits for the lock.
            holder.execute("BEGIN")
            holder.execute('LOCK TABLE ref."locked" IN ACCESS EXCLUSIVE MODE')
            share.fault()
            campaign.drop_tagged("ref", "fullload", "locked", 1, 200)
            campaign.drop_tagged("noref", "append", "unlocked", 2, 100)
            wait_for(lambda: campaign.count("unlocked"), 60, what="the other table loads")
            assert campaign.processing(), "the locked load should be waiting, not failed"
            assert d.get("/healthz")[0] == 200
            holder.execute("ROLLBACK")
        campaign.wait_settled()
        campaign.check([d])
        d.terminate()

        # With DB_STATEMENT_TIMEOUT_SECONDS the blocked statement is cancelled and retried with backoff.
        t = campaign.daemon("timeout", workers=2, db_statement_timeout_seconds=1)
        t.wait_healthy()
        with admin(campaign.url) as holder:
            holder.execute("BEGIN")
            holder.execute('LOCK TABLE ref."locked" IN ACCESS EXCLUSIVE MODE')
            share.fault()
            campaign.drop_tagged("ref", "fullload", "locked", 3, 200)
            wait_for(
                lambda: campaign.attempts("retry", "statement timeout"),
                60,
                what="a load cancelled by the statement timeout",
            )
            time.sleep(4)
            retries = len([r for r in campaign.tracking() if r["status"] == "retry"])
            assert t.get("/healthz")[0] == 200
            holder.execute("ROLLBACK")
        campaign.wait_settled()
        outcome = campaign.check([t])
        assert outcome.statuses["loaded"] == 4
        # Backoff: 1, 2, 4 s between attempts (plus the stability checks), not one every scan.
        assert retries <= 5, f"{retries} attempts in about 5 s: no backoff"
        share.note(
            f"table locked by another session: the load waited; with a 1 s statement timeout: "
            f"{retries} retries in ~5 s"
        )
        share.survived()


class TestWritesRefused:
    def test_read_only_database_and_revoked_privilege_are_retried_until_fixed(
        self, tmp_path, app_role: str, pg_url: str, share
    ):
        """A read-only database or a revoked INSERT right keeps files waiting (not in error/) until fixed."""
        c = Campaign(tmp_path, app_role, share)
        try:
            d = c.daemon("ro", workers=2)
            d.wait_healthy()
            c.drop_tagged("ref", "append", "guarded", 0, 100)
            c.wait_settled()
            database = make_url(pg_url).database

            # 1. The whole database turns read-only.
            with admin(pg_url, "postgres") as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                        sql.Identifier(database)
                    )
                )
            terminate_sessions(pg_url)
            share.fault()
            c.drop_tagged("ref", "append", "guarded", 1, 100)
            seen = ride_out(d, 0)
            assert "read-only" in seen["output"], seen
            assert not list((c.folder("ref", "append") / "error").iterdir())
            with admin(pg_url, "postgres") as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
                        sql.Identifier(database)
                    )
                )
            terminate_sessions(pg_url)
            c.wait_settled(timeout=120)
            c.check([d])

            # 2. INSERT on the target table is revoked from the daemon's role.
            role = make_url(app_role).username
            with admin(pg_url) as conn:
                conn.execute(sql.SQL("REVOKE INSERT ON ref.guarded FROM {}").format(sql.Identifier(role)))
            share.fault()
            c.drop_tagged("ref", "append", "guarded", 2, 100)
            wait_for(
                lambda: c.attempts("retry", "permission denied"),
                60,
                what="a load refused for lack of privilege",
            )
            _, body = d.get_json("/readyz")
            assert body["checks"]["database"]["status"] == "warn", body
            assert "permission denied" in body["checks"]["database"]["output"]
            time.sleep(1)
            assert not list((c.folder("ref", "append") / "error").iterdir())
            with admin(pg_url) as conn:
                conn.execute(sql.SQL("GRANT INSERT ON ref.guarded TO {}").format(sql.Identifier(role)))
            c.wait_settled(timeout=120)
            outcome = c.check([d])
            assert outcome.statuses["loaded"] == 3
            share.survived()
        finally:
            c.close()
