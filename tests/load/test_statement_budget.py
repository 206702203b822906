"""What a small file costs the database: statements and commits of one steady-state append.

A burst of small files pays these per file (bench/burst.py); the budget is what the loader sends
today, so a change that adds a round trip or a commit to every load has to say so here.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from backend.load.loader import load_file
from backend.models import LoadRequest, LoadType
from tests.support import make_settings, open_db, write_csv

#: (statements through SQLAlchemy, commits) of the third append of a 2-row file, as measured:
#: the tracking row and its event (commit), the plan's read (table fingerprint, current version,
#: recorded types; commit), the publish (fingerprint again under the lock, current version, the
#: last profile, the row count check, three UPDATEs and the events' INSERT; commit). The rows go
#: through the driver (executemany or COPY) and are not counted; SQLite's BEGINs are statements.
BUDGET = {"sqlite": (16, 3), "postgresql": (15, 3)}


def test_a_small_append_stays_within_its_statement_budget(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    db = open_db(settings)
    try:

        def append() -> None:
            path = write_csv(tmp_path / "small.csv", [["id", "name"], ["1", "a"], ["2", "b"]])
            load_file(db, settings, LoadRequest(path=path, load_type=LoadType.APPEND))

        append()
        append()  # the table exists and its definition is cached: the steady state of a burst
        statements: list[str] = []
        commits: list[int] = []
        sa.event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        sa.event.listen(db.engine, "commit", lambda _conn: commits.append(1))
        append()
        found = (len(statements), len(commits))
        assert found == BUDGET[db.adapter.name], "\n".join(s.split("\n")[0][:90] for s in statements)
    finally:
        db.dispose()
