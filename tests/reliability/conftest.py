"""Fixtures of the reliability campaign and the hook that prints its figures at the end of the session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.reliability import figures
from tests.reliability.support import Campaign, admin

#: Password of the role `app_role` creates; special characters so its URL-encoded form differs.
APP_PASSWORD = "Pw:s3cr3t@/%f0-é"


@pytest.fixture
def share(request: pytest.FixtureRequest) -> figures.Share:
    """This test's share of its scenario's figures (the module names the scenario in SCENARIO)."""
    return figures.Share(request.module.SCENARIO)


@pytest.fixture
def campaign(tmp_path: Path, pg_url: str, share: figures.Share) -> Iterator[Campaign]:
    """A dropoff, a fresh PostgreSQL database and the ledger of files dropped into it."""
    c = Campaign(tmp_path, pg_url, share)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def app_role(pg_url: str) -> Iterator[str]:
    """The test database owned by a new non-superuser role; yields the URL that logs in as it."""
    role = f"rel_app_{uuid.uuid4().hex[:8]}"
    database = make_url(pg_url).database
    with admin(pg_url) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(APP_PASSWORD)
            )
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(role))
        )
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
    try:
        yield make_url(pg_url).set(username=role, password=APP_PASSWORD).render_as_string(hide_password=False)
    finally:
        with admin(pg_url) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(sql.Identifier(database)))
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with admin(pg_url, "postgres") as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = figures.render()
    if not lines:
        return
    terminalreporter.write_sep("=", "reliability campaign figures")
    for line in lines:
        terminalreporter.write_line(line)
    target = figures.report_path()
    if target is not None:
        figures.write_report(target)
        terminalreporter.write_line(f"(figures written to {target})")
