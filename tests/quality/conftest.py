"""Fixtures for the data quality tests: a database (SQLite and PostgreSQL) and a config folder."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from backend.config import Settings
from backend.db import Database
from backend.load.loader import load_file
from backend.models import LoadRequest, LoadResult, LoadType
from tests.support import make_settings, open_db, write_csv


@dataclass
class QualityEnv:
    """One test's database, settings and folders, with helpers to write policies and load files."""

    tmp: Path
    settings: Settings
    db: Database

    @property
    def tables_dir(self) -> Path:
        return self.settings.config_dir / "tables"

    def policy(self, table: str, text: str) -> Path:
        """Write ``config/tables/<table>.yaml``."""
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        path = self.tables_dir / f"{table}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def csv(self, name: str, rows: Sequence[Sequence[str]]) -> Path:
        return write_csv(self.tmp / name, rows)

    def load(self, path: Path, load_type: LoadType = LoadType.FULLLOAD, **kw: Any) -> LoadResult:
        return load_file(self.db, self.settings, LoadRequest(path=path, load_type=load_type, **kw))

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self.db.read() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]

    def tracking(self) -> dict[str, Any]:
        """The newest tracking row."""
        t = self.db.catalog.tracking
        with self.db.read() as conn:
            return dict(conn.execute(sa.select(t).order_by(t.c.id.desc()).limit(1)).mappings().one())

    def profile(self) -> dict[str, Any]:
        return json.loads(self.tracking()["profile"])

    def events(self, name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(event, details) of the newest tracking row, oldest first."""
        e = self.db.catalog.events
        tracking_id = self.tracking()["id"]
        query = sa.select(e.c.event, e.c.details).where(e.c.tracking_id == tracking_id).order_by(e.c.id)
        with self.db.read() as conn:
            found = [(r.event, json.loads(r.details or "{}")) for r in conn.execute(query)]
        return [f for f in found if name is None or f[0] == name]

    def has_table(self, table: str, schema: str = "ref") -> bool:
        return sa.inspect(self.db.engine).has_table(table, schema=schema)

    def columns(self, table: str, schema: str = "ref") -> list[str]:
        return [c["name"] for c in sa.inspect(self.db.engine).get_columns(table, schema=schema)]


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[QualityEnv]:
    settings = make_settings(tmp_path, db_url)
    db = open_db(settings)
    yield QualityEnv(tmp_path, settings, db)
    db.dispose()


@pytest.fixture
def sqlite_env(tmp_path: Path, sqlite_url: str) -> Iterator[QualityEnv]:
    settings = make_settings(tmp_path, sqlite_url)
    db = open_db(settings)
    yield QualityEnv(tmp_path, settings, db)
    db.dispose()
