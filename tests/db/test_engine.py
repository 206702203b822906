"""Driver errors classified by what they mean: the environment's (retry) or the file's (error/)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.db.engine import is_transient, transient_reason, translate_error
from backend.errors import DatabaseUnavailableError, RowError
from tests.support import make_settings, open_db


class FakeOdbcError(Exception):
    """What pyodbc raises: args are (SQLSTATE, message)."""


def dbapi_error(orig: BaseException) -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("SELECT 1", {}, orig)


class TestMeanings:
    @pytest.mark.parametrize(
        ("message", "reason"),
        [
            ("[Errno -3] Temporary failure in name resolution", "name resolution"),
            ("[Errno -2] Name or service not known", "name resolution"),
            ('could not translate host name "db.example" to address', "name resolution"),
            ("port 1 failed: Connection refused", "connection refused or reset"),
            ("server closed the connection unexpectedly", "server shutting down"),
            ("FATAL:  sorry, too many clients already", "too many connections"),
            ("deadlock detected", "deadlock"),
            ("could not serialize access due to concurrent update", "serialisation failure"),
            ("database is locked", "database busy"),
        ],
    )  # fmt: skip
    def test_driver_words_name_the_reason_for_a_retry(self, message: str, reason: str):
        """A driver error without a SQLSTATE is recognised by its words and named by its meaning."""
        error = dbapi_error(Exception(message))
        assert transient_reason(error) == reason
        translated = translate_error(error)
        assert isinstance(translated, DatabaseUnavailableError)
        assert f"({reason})" in str(translated)

    @pytest.mark.parametrize(
        ("orig", "reason"),
        [
            (socket.gaierror(-3, "lookup failed"), "name resolution"),
            (ConnectionResetError(104, "peer went away"), "connection refused or reset"),
            (TimeoutError("read"), "timeout"),
        ],
    )
    def test_python_network_errors_in_the_chain_are_transient(self, orig: BaseException, reason: str):
        """A socket error anywhere in the exception chain makes the error transient."""
        wrapper = Exception("opaque driver message")
        wrapper.__cause__ = orig
        assert transient_reason(dbapi_error(wrapper)) == reason

    @pytest.mark.parametrize(
        ("args", "reason"),
        [
            (("40001", "[40001] Transaction was deadlocked ... (1205)"), "serialisation failure"),
            (("08001", "[08001] TCP Provider: No such host is known. (11001)"), "connection failed or lost"),
            (("HYT00", "[HYT00] Login timeout expired (0)"), "timeout"),
            (("42000", "[42000] SHUTDOWN is in progress. (6005)"), "server shutting down"),
            (("42000", "[42000] The maximum number of user connections ... (17809)"), "too many connections"),
        ],
    )  # fmt: skip
    def test_sql_server_codes_are_transient(self, args: tuple[str, str], reason: str):
        """SQL Server's SQLSTATEs and native numbers (deadlock, host, timeout, shutdown, slots) retry."""
        assert transient_reason(dbapi_error(FakeOdbcError(*args))) == reason

    @pytest.mark.parametrize(
        "message",
        [
            'invalid input syntax for type integer: "abc"',
            "value too long for type character varying(16)",
            'duplicate key value violates unique constraint "ux"',
            "tables can have at most 1600 columns",
        ],
    )
    def test_errors_of_the_file_content_send_it_to_error(self, message: str):
        """A value, constraint or width error is the file's own: RowError, not a retry."""
        error = dbapi_error(Exception(message))
        assert not is_transient(error)
        assert isinstance(translate_error(error), RowError)


@pytest.fixture
def pg_db(tmp_path: Path, pg_url: str):
    db = open_db(make_settings(tmp_path, pg_url, db_connect_timeout_seconds=3))
    yield db
    db.dispose()


def _classify(fn) -> DatabaseUnavailableError:
    with pytest.raises(DatabaseUnavailableError) as caught:
        fn()
    return caught.value


@pytest.mark.postgres
class TestPostgreSQL:
    def test_a_host_that_does_not_resolve_is_transient(self, tmp_path: Path):
        """A database host name that does not resolve is an outage (retry), not bad data."""
        from backend.db import open_database

        settings = make_settings(tmp_path, "postgresql+psycopg://u@no-such-host.invalid:5432/db")
        target = open_database(settings)
        try:
            error = _classify(target.ping)
        finally:
            target.dispose()
        assert "(name resolution)" in str(error)

    def test_a_closed_port_is_transient(self, tmp_path: Path):
        """A server that refuses the connection (nothing listens on the port) is an outage."""
        from backend.db import open_database

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        target = open_database(make_settings(tmp_path, f"postgresql+psycopg://u@127.0.0.1:{port}/db"))
        try:
            error = _classify(target.ping)
        finally:
            target.dispose()
        assert "(connection" in str(error)

    def test_too_many_connections_is_transient(self, tmp_path: Path, pg_db, pg_url: str):
        """PostgreSQL's connection limit (SQLSTATE 53300) makes the load wait, not fail."""
        from backend.db import open_database

        role = f"r_{uuid.uuid4().hex[:8]}"
        with pg_db.engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
            conn.commit()
        url = sa.engine.make_url(pg_url).set(username=role, password=None)
        limited = open_database(make_settings(tmp_path, url.render_as_string(hide_password=False)))
        try:
            with limited.engine.connect():
                second = sa.create_engine(url, poolclass=sa.pool.NullPool)
                with pytest.raises(sa.exc.DBAPIError) as caught:
                    second.connect()
                second.dispose()
        finally:
            limited.dispose()
        assert transient_reason(caught.value) == "too many connections"

    def test_a_deadlock_victim_is_transient(self, pg_db):
        """Of two transactions locking two rows in opposite order, the victim's error (40P01) retries."""
        with pg_db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE dl (id int PRIMARY KEY)")
            conn.exec_driver_sql("INSERT INTO dl VALUES (1), (2)")
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def worker(first: int, second: int) -> None:
            try:
                with pg_db.write() as conn:
                    conn.exec_driver_sql(f"UPDATE dl SET id = id WHERE id = {first}")
                    barrier.wait(10)
                    conn.exec_driver_sql(f"UPDATE dl SET id = id WHERE id = {second}")
            except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=a) for a in ((1, 2), (2, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(errors) == 1 and isinstance(errors[0], DatabaseUnavailableError)
        assert "(deadlock)" in str(errors[0])

    def test_a_serialisation_failure_is_transient(self, pg_db):
        """A REPEATABLE READ update that lost to a concurrent one (40001) retries."""
        with pg_db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE sf (id int PRIMARY KEY, v int)")
            conn.exec_driver_sql("INSERT INTO sf VALUES (1, 0)")
        with pg_db.engine.connect() as slow:
            slow.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            slow.exec_driver_sql("SELECT v FROM sf WHERE id = 1").all()
            with pg_db.engine.begin() as fast:
                fast.exec_driver_sql("UPDATE sf SET v = 1 WHERE id = 1")
            with pytest.raises(sa.exc.DBAPIError) as caught:
                slow.exec_driver_sql("UPDATE sf SET v = 2 WHERE id = 1")
            slow.rollback()
        assert transient_reason(caught.value) == "serialisation failure"

    def test_a_terminated_backend_is_transient(self, pg_db):
        """A session killed by pg_terminate_backend (server shutting it down) is an outage."""
        errors: list[BaseException] = []
        started = threading.Event()

        def sleeper() -> None:
            try:
                with pg_db.read() as conn:
                    started.set()
                    conn.exec_driver_sql("SELECT pg_sleep(30)")
            except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
                errors.append(exc)

        thread = threading.Thread(target=sleeper)
        thread.start()
        started.wait(10)
        with pg_db.engine.connect() as admin:
            deadline = time.monotonic() + 10
            killed = False
            while not killed and time.monotonic() < deadline:
                killed = bool(
                    admin.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE 'SELECT pg_sleep(30)%%' AND pid <> pg_backend_pid()"
                    ).all()
                )
                time.sleep(0.05)
        thread.join(30)
        assert len(errors) == 1 and isinstance(errors[0], DatabaseUnavailableError)
