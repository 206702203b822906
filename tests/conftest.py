"""Fixtures and hooks every test shares.

- Databases: ``sqlite_url`` (a file under tmp_path), ``pg_url`` (a fresh database per test on a
  throwaway PostgreSQL server the session starts itself, or on the server ``TEST_POSTGRES_URL``
  points at), ``db_url`` (both, parametrized), ``pg_server`` (stop/start the server for
  database-down scenarios) and ``mssql_url`` (only when ``MSSQL_TEST_URL`` is set).
- ``--soak`` enables tests marked ``soak``.
- ``REQUIRE_POSTGRES=1`` (set by ``make test``) fails the session when a PostgreSQL test was
  skipped or none ran, so a machine without the server cannot pass by skipping.
- Every test fails if it leaves non-daemon threads running.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

# A thread still running this long after its test ended is a leak, not a slow shutdown.
THREAD_GRACE_SECONDS = 2.0
PG_START_TIMEOUT_SECONDS = 60
PG_STOP_TIMEOUT_SECONDS = 30
# Prefix of the server's temp dir; also how orphans of killed sessions are recognised.
PG_DIR_PREFIX = "refdata-pg-"
PG_FIXTURES = frozenset({"pg_target", "pg_url", "pg_server"})
# Settings for a disposable server: no fsync, since the data dies with the session anyway. But
# synchronous_commit stays on: without fsync a commit is only a write() into the OS cache, nearly free,
# and turning it off lets an immediate stop or kill -9 lose commits the client was told succeeded,
# which would make crash/restart tests lie.
PG_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
max_connections = 200
fsync = off
synchronous_commit = on
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
"""


class PgUnavailableError(Exception):
    """The throwaway PostgreSQL server cannot be set up on this machine."""


# ------------------------------------------------------------------------------------------ server
def find_pg_bindir() -> Path | None:
    """Locate the PostgreSQL server binaries.

    Returns:
        ``pg_config --bindir`` when it holds initdb (pg_config alone may come from libpq-dev),
        else the highest ``/usr/lib/postgresql/<version>/bin``, else None.
    """
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(result.stdout.strip())
        if result.returncode == 0 and _has_server_binaries(bindir):
            return bindir
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    candidates = [c for c in candidates if _has_server_binaries(c)]
    if not candidates:
        return None
    return max(candidates, key=lambda bindir: _version_key(bindir.parent.name))


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres"))


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (0,)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PgServer:
    """A PostgreSQL server in its own temp dir on a free loopback port, driven by pg_ctl.

    As root the server runs as the ``postgres`` user (it refuses to run as root).
    """

    host = "127.0.0.1"

    def __init__(self, bindir: Path, base_dir: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_file = base_dir / "postgres.log"
        self.run_as = run_as
        self.port = 0

    @classmethod
    def create(cls) -> PgServer:
        """Initialise and start a new server.

        Raises:
            PgUnavailableError: binaries or the ``postgres`` user are missing, or it would not start.
        """
        bindir = find_pg_bindir()
        if bindir is None:
            raise PgUnavailableError(
                "PostgreSQL binaries not found (no initdb in `pg_config --bindir` or "
                "/usr/lib/postgresql/*/bin); install the postgresql package or set TEST_POSTGRES_URL"
            )
        run_as = None
        if os.geteuid() == 0:
            run_as = "postgres"
            try:
                pw = pwd.getpwnam(run_as)
            except KeyError:
                raise PgUnavailableError(
                    "running as root but there is no 'postgres' user to run the server as"
                ) from None
            if shutil.which("runuser") is None:
                raise PgUnavailableError("running as root but runuser is not installed")
        # Under /tmp, not pytest's tmp_path: the postgres user must be able to reach it, and the
        # unix socket path must stay short (about 100 bytes at most).
        root = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
        _reap_orphans(root, bindir, run_as)
        base_dir = Path(tempfile.mkdtemp(prefix=PG_DIR_PREFIX, dir=root))
        base_dir.chmod(0o755)
        (base_dir / "owner.pid").write_text(str(os.getpid()))
        if run_as is not None:
            os.chown(base_dir, pw.pw_uid, pw.pw_gid)
        server = cls(bindir, base_dir, run_as)
        try:
            server._initdb()
            server._start_on_free_port()
        except BaseException:
            server.destroy()
            raise
        return server

    @property
    def admin_url(self) -> URL:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> URL:
        """SQLAlchemy URL (psycopg driver) of ``database`` on this server."""
        return URL.create(
            "postgresql+psycopg", username="postgres", host=self.host, port=self.port, database=database
        )

    def start(self) -> None:
        """Start the server on its current port; a no-op when it is running.

        Raises:
            PgUnavailableError: it did not come up (the message carries the end of its log).
        """
        last_error: PgUnavailableError | None = None
        # The port can be briefly unavailable after a stop (or taken by another process's probe).
        for _ in range(5):
            try:
                if self.is_running():
                    self.wait_ready()  # also covers an earlier attempt that started but was not ready
                else:
                    self._pg_ctl_start()
                return
            except PgUnavailableError as exc:
                last_error = exc
                time.sleep(0.5)
        assert last_error is not None
        raise last_error

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; a no-op when it is not running.

        Args:
            mode: pg_ctl shutdown mode: "smart", "fast" (default) or "immediate" (like a crash).
        """
        if not self.is_running():
            return
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30")
        if self.is_running() and mode != "immediate":
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30")
        if self.is_running():
            self._kill_postmaster()

    def is_running(self) -> bool:
        """Whether a postmaster is running on the data dir (pg_ctl status)."""
        if not self.data_dir.exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def wait_ready(self, timeout_seconds: float = PG_START_TIMEOUT_SECONDS) -> None:
        """Block until the server accepts TCP connections.

        Raises:
            PgUnavailableError: it did not within ``timeout_seconds``.
        """
        deadline = time.monotonic() + timeout_seconds
        conninfo = psycopg_conninfo(self.admin_url)
        while True:
            try:
                with psycopg.connect(conninfo, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PgUnavailableError(f"server not accepting connections: {exc}") from exc
                time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server log, for failure messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def destroy(self) -> None:
        """Stop the server at once and delete its temp dir; safe to call twice."""
        with contextlib.suppress(Exception):
            self.stop(mode="immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- internals --------------------------------------------------------------------------------
    def _command(self, tool: str, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, str(self.bindir / tool), *args]

    def _run(
        self, tool: str, *args: str, timeout: float = PG_STOP_TIMEOUT_SECONDS + 10
    ) -> subprocess.CompletedProcess[str]:
        # cwd: the postgres user may not be able to enter the caller's directory (e.g. /root).
        # LC_ALL=C keeps messages parseable and avoids warnings about locales not installed.
        return subprocess.run(
            self._command(tool, *args),
            cwd=self.base_dir,
            env={**os.environ, "LC_ALL": "C"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _initdb(self) -> None:
        result = self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-A", "trust",
            "-U", "postgres",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
            timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise PgUnavailableError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(PG_CONF.format(socket_dir=self.base_dir))

    def _start_on_free_port(self) -> None:
        last_error: PgUnavailableError | None = None
        # A free port can be taken between probing and binding by a parallel session: try another.
        for _ in range(3):
            self.port = _free_port()
            try:
                self._pg_ctl_start()
                return
            except PgUnavailableError as exc:
                last_error = exc
                self.stop(mode="immediate")  # in case it started but never became ready
        assert last_error is not None
        raise last_error

    def _pg_ctl_start(self) -> None:
        result = self._run(
            "pg_ctl", "start",
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-o", f"-p {self.port}",
            "-w", "-t", str(PG_START_TIMEOUT_SECONDS),
            timeout=PG_START_TIMEOUT_SECONDS + 10,
        )  # fmt: skip
        if result.returncode != 0:
            raise PgUnavailableError(
                f"pg_ctl start failed on port {self.port}: {result.stderr.strip()}\n{self.log_tail()}"
            )
        self.wait_ready()

    def _kill_postmaster(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + PG_STOP_TIMEOUT_SECONDS
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def _reap_orphans(root: str, bindir: Path, run_as: str | None) -> None:
    """Stop and delete servers left behind by test sessions that were killed (their owner is gone)."""
    for base in glob.glob(os.path.join(root, PG_DIR_PREFIX + "*")):
        try:
            owner = int(Path(base, "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        PgServer(bindir, Path(base), run_as).destroy()


def psycopg_conninfo(url: URL) -> str:
    """A libpq connection string for a SQLAlchemy URL (psycopg wants no "+driver")."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class PgTarget:
    """Where PostgreSQL tests create their databases; ``server`` is None for an external one."""

    admin_url: URL
    server: PgServer | None

    def url_for(self, database: str) -> URL:
        """SQLAlchemy URL of ``database`` next to the admin database."""
        return self.admin_url.set(database=database)


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail the test if it leaves non-daemon threads running (defined first so it is torn down last)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_GRACE_SECONDS
    leaked = []
    for thread in threading.enumerate():
        if thread in before or thread.daemon or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread.name)
    if leaked:
        pytest.fail(f"test left non-daemon threads running: {', '.join(leaked)}", pytrace=False)


@pytest.fixture(autouse=True)
def _postgres_available(request: pytest.FixtureRequest) -> None:
    """Skip a test marked postgres, with the reason, when no PostgreSQL server can be had."""
    if request.node.get_closest_marker("postgres") is not None:
        request.getfixturevalue("pg_target")


@pytest.fixture(scope="session")
def pg_target() -> Iterator[PgTarget]:
    """The PostgreSQL server of the session: TEST_POSTGRES_URL, or a throwaway one started here."""
    external = os.environ.get("TEST_POSTGRES_URL")
    if external:
        yield PgTarget(admin_url=make_url(external).set(drivername="postgresql+psycopg"), server=None)
        return
    try:
        server = PgServer.create()
    except PgUnavailableError as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    # Backstop for an interpreter exit that skips fixture teardown; destroy() is idempotent.
    atexit.register(server.destroy)
    try:
        yield PgTarget(admin_url=server.admin_url, server=server)
    finally:
        server.destroy()
        atexit.unregister(server.destroy)


@pytest.fixture
def pg_server(pg_target: PgTarget) -> Iterator[PgServer]:
    """The suite's own PostgreSQL server, for tests that stop and start it; left running afterwards."""
    if pg_target.server is None:
        pytest.skip("needs the suite's own PostgreSQL server; TEST_POSTGRES_URL points at an external one")
    yield pg_target.server
    pg_target.server.start()


@pytest.fixture
def pg_url(pg_target: PgTarget) -> Iterator[str]:
    """SQLAlchemy URL (postgresql+psycopg) of a fresh, empty database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex}"
    conninfo = psycopg_conninfo(pg_target.admin_url)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        # template0: template1 may be in use by another session, which makes CREATE DATABASE fail.
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name))
        )
    try:
        yield pg_target.url_for(name).render_as_string(hide_password=False)
    finally:
        if pg_target.server is not None:
            pg_target.server.start()  # the test may have stopped it
        with psycopg.connect(conninfo, autocommit=True) as admin:
            # FORCE: connections the test's engine still pools must not keep the database alive.
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'refdata.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each engine the suite always runs: SQLite and PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[tuple[Any, Any]]:
    """(settings, database) for one test: its own folders, the tables created, on each engine."""
    from tests.support import make_settings, open_db

    settings = make_settings(tmp_path, db_url)
    db = open_db(settings)
    yield settings, db
    db.dispose()


@pytest.fixture
def mssql_url() -> str:
    """SQLAlchemy URL of a SQL Server test database from MSSQL_TEST_URL; skips without it."""
    url = os.environ.get("MSSQL_TEST_URL")
    if not url:
        pytest.skip("MSSQL_TEST_URL is not set")
    return url


# ------------------------------------------------------------------------------------------- hooks
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False, help="also run tests marked soak")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        config.pluginmanager.register(RequirePostgres(config), "require-postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_soak = pytest.mark.skip(reason="soak test: run with --soak")
    skip_mssql = pytest.mark.skip(reason="MSSQL_TEST_URL is not set")
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        # Marking at collection lets `-m "not postgres"` deselect tests that only use the fixtures.
        if fixtures & PG_FIXTURES and item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)
        if "mssql_url" in fixtures and item.get_closest_marker("mssql") is None:
            item.add_marker(pytest.mark.mssql)
        if item.get_closest_marker("soak") is not None and not config.getoption("--soak"):
            item.add_marker(skip_soak)
        if item.get_closest_marker("mssql") is not None and not os.environ.get("MSSQL_TEST_URL"):
            item.add_marker(skip_mssql)


@dataclass(eq=False)  # registered as a plugin, so it must stay hashable
class RequirePostgres:
    """Plugin for REQUIRE_POSTGRES=1: a skipped PostgreSQL test, or none run, fails the session."""

    config: pytest.Config
    postgres_nodeids: set[str] = field(default_factory=set)
    ran: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        soak_off = not self.config.getoption("--soak")
        self.postgres_nodeids = {
            item.nodeid
            for item in items
            if item.get_closest_marker("postgres") is not None
            # Soak tests are skipped by design without --soak; that is not a missing server.
            and not (soak_off and item.get_closest_marker("soak") is not None)
        }

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.postgres_nodeids:
            return
        if report.skipped and not hasattr(report, "wasxfail"):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.skipped.setdefault(report.nodeid, reason)
        elif report.when == "call":
            self.ran += 1

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped:
            self.problem = f"{len(self.skipped)} test(s) marked postgres were skipped"
        elif self.ran == 0:
            self.problem = "no test marked postgres ran"
        if self.problem and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.problem is None:
            return
        terminalreporter.write_sep("=", "REQUIRE_POSTGRES=1: PostgreSQL tests must run", red=True, bold=True)
        terminalreporter.write_line(f"FAILED: {self.problem}.", red=True, bold=True)
        for nodeid, reason in list(self.skipped.items())[:20]:
            terminalreporter.write_line(f"  skipped {nodeid}: {reason}")
        if len(self.skipped) > 20:
            terminalreporter.write_line(f"  ... and {len(self.skipped) - 20} more")
        terminalreporter.write_line(
            "Install the PostgreSQL server (apt-get install postgresql; `make test` does this as root) "
            "or point TEST_POSTGRES_URL at a server."
        )
