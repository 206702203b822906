"""Tests of the test harness itself: the database fixtures and the session-wide gates in conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.conftest import PgServer, PgTarget, psycopg_conninfo

HERE = Path(__file__).parent
REPO = HERE.parent

# Databases handed out by pg_url so far in this session, to check isolation across tests.
_seen_databases: list[str] = []


def _scalar(url: str, query: str) -> object:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


class TestPostgresServer:
    def test_server_answers_with_version_15_or_later(self, pg_url: str) -> None:
        """The session's PostgreSQL server answers through SQLAlchemy + psycopg and is version 15+."""
        assert pg_url.startswith("postgresql+psycopg://")
        version = str(_scalar(pg_url, "select version()"))
        version_num = int(str(_scalar(pg_url, "show server_version_num")))
        assert version.startswith("PostgreSQL ")
        assert version_num >= 150000, version

    @pytest.mark.parametrize("run", [1, 2])
    def test_each_test_gets_a_fresh_database(self, pg_url: str, pg_target: PgTarget, run: int) -> None:
        """Every test gets its own empty database, and earlier tests' databases are dropped."""
        name = str(_scalar(pg_url, "select current_database()"))
        assert name not in _seen_databases
        with psycopg.connect(psycopg_conninfo(pg_target.admin_url)) as admin:
            existing = {row[0] for row in admin.execute("select datname from pg_database")}
        assert name in existing
        assert not existing & set(_seen_databases), "a previous test's database was not dropped"
        engine = sa.create_engine(pg_url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                assert not sa.inspect(conn).has_table("isolation_marker")
                conn.execute(sa.text("create table isolation_marker (run int)"))
        finally:
            engine.dispose()
        _seen_databases.append(name)


class TestDbUrl:
    def test_round_trips_a_row(self, db_url: str) -> None:
        """db_url is an empty, writable database on each engine (SQLite and PostgreSQL)."""
        engine = sa.create_engine(db_url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("create table t (id integer primary key, name varchar(20))"))
                conn.execute(sa.text("insert into t (id, name) values (1, 'é-ü')"))
            with engine.connect() as conn:
                assert [tuple(row) for row in conn.execute(sa.text("select id, name from t"))] == [(1, "é-ü")]
        finally:
            engine.dispose()

    def test_sqlite_url_points_into_tmp_path(self, sqlite_url: str, tmp_path: Path) -> None:
        """sqlite_url names a database file inside the test's own tmp_path."""
        assert sqlite_url == f"sqlite:///{tmp_path}/refdata.db"


class TestPgServerRestart:
    @pytest.mark.parametrize("mode", ["fast", "immediate"])
    def test_stop_then_start_brings_server_back(self, pg_server: PgServer, pg_url: str, mode: str) -> None:
        """After pg_server.stop() connections fail; after start() the same URL works and data survived."""
        engine = sa.create_engine(pg_url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("create table kept (n int)"))
                conn.execute(sa.text("insert into kept values (42)"))
            pg_server.stop(mode=mode)
            assert not pg_server.is_running()
            with pytest.raises(sa.exc.OperationalError), engine.connect():
                pass
            pg_server.start()
            assert pg_server.is_running()
            with engine.connect() as conn:
                assert conn.execute(sa.text("select n from kept")).scalar_one() == 42
        finally:
            engine.dispose()


# ------------------------------------------------------------------- session gates, in a sub-pytest
def _run_pytest(
    tmp_path: Path, test_source: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run pytest in a subprocess on one test file, with this suite's conftest and settings."""
    (tmp_path / "conftest.py").write_text((HERE / "conftest.py").read_text())
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(test_source))
    child_env = {k: v for k, v in os.environ.items() if k not in ("REQUIRE_POSTGRES", "TEST_POSTGRES_URL")}
    # An external URL that is never connected to: keeps the inner session from starting a server.
    child_env["TEST_POSTGRES_URL"] = "postgresql://postgres@127.0.0.1:1/postgres"
    child_env.update(env or {})
    result = subprocess.run(
        # hypothesis's plugin costs a second per run and plays no part here.
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "test_inner.py",
            *args,
        ],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


POSTGRES_TESTS = """
    import pytest

    @pytest.mark.postgres
    def test_runs():
        pass

    @pytest.mark.postgres
    def test_skips():
        pytest.skip("no server today")
"""


class TestRequirePostgres:
    def test_skipped_postgres_test_fails_the_session(self, tmp_path: Path) -> None:
        """With REQUIRE_POSTGRES=1 a skipped postgres test makes the session fail and says which."""
        code, output = _run_pytest(tmp_path, POSTGRES_TESTS, env={"REQUIRE_POSTGRES": "1"})
        assert code == 1, output
        assert "1 test(s) marked postgres were skipped" in output
        assert "test_inner.py::test_skips: Skipped: no server today" in output

    def test_session_without_postgres_tests_fails(self, tmp_path: Path) -> None:
        """With REQUIRE_POSTGRES=1 deselecting every postgres test fails instead of exiting 5."""
        code, output = _run_pytest(
            tmp_path, POSTGRES_TESTS, "-m", "not postgres", env={"REQUIRE_POSTGRES": "1"}
        )
        assert code == 1, output
        assert "no test marked postgres ran" in output

    def test_postgres_tests_that_run_pass_the_session(self, tmp_path: Path) -> None:
        """With REQUIRE_POSTGRES=1 a session whose postgres tests all ran passes."""
        code, output = _run_pytest(tmp_path, POSTGRES_TESTS, "-k", "test_runs", env={"REQUIRE_POSTGRES": "1"})
        assert code == 0, output
        assert "REQUIRE_POSTGRES" not in output

    def test_skips_are_tolerated_without_the_variable(self, tmp_path: Path) -> None:
        """Without REQUIRE_POSTGRES a skipped postgres test is just a skip."""
        code, output = _run_pytest(tmp_path, POSTGRES_TESTS)
        assert code == 0, output


class TestSessionGates:
    def test_soak_skipped_and_leaked_threads_fail(self, tmp_path: Path) -> None:
        """Soak tests are skipped without --soak; a thread outliving the grace period fails its test."""
        code, output = _run_pytest(
            tmp_path,
            """
            import threading, time
            import pytest

            @pytest.mark.soak
            def test_long():
                raise AssertionError("soak test ran without --soak")

            def test_leaks_a_thread():
                threading.Thread(target=time.sleep, args=(3,), name="leaky").start()

            def test_thread_finishing_within_grace_is_fine():
                threading.Thread(target=time.sleep, args=(0.3,), name="brief").start()
            """,
        )
        assert code == 1, output
        assert "soak test: run with --soak" in output
        assert "test left non-daemon threads running: leaky" in output
        assert "brief" not in output
        assert "2 passed, 1 skipped, 1 error" in output
