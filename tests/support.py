"""Helpers shared by the tests: settings for a temp folder, CLI calls, reading tables back."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from backend.cli import main
from backend.config import Settings
from backend.db import Database, open_database
from backend.ops.export import export_table


def make_settings(tmp_path: Path, url: str, **overrides: Any) -> Settings:
    """Settings for one test: its own data and dropoff folders, no .env, no YAML."""
    values: dict[str, Any] = {
        "database_url": url,
        "data_dir": tmp_path / "data",
        "dropoff_base_path": tmp_path / "dropoff",
        "config_dir": tmp_path / "config",
        "health_enabled": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def open_db(settings: Settings) -> Database:
    db = open_database(settings)
    db.init_db()
    return db


def write_csv(
    path: Path,
    rows: Sequence[Sequence[str]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    newline: str = "\n",
) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def read_csv(path: Path, *, delimiter: str = ",", encoding: str = "utf-8") -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as f:
        return [row for row in csv.reader(f, delimiter=delimiter) if row]


def export_rows(
    db: Database, table: str, *, version: int | None = None, sql_names: bool = False
) -> list[list[str]]:
    out = io.StringIO()
    export_table(db, table, out, version=version, sql_names=sql_names)
    return list(csv.reader(io.StringIO(out.getvalue())))


def run_cli(args: Sequence[str], capsys: Any) -> tuple[int, str, str]:
    """Run `python -m backend ARGS` in-process with no .env file; returns (code, stdout, stderr)."""
    capsys.readouterr()  # drop what earlier steps of the test printed (e.g. unconfigured log lines)
    code = main(["--env-file", "/nonexistent/.env", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def scalar(db: Database, sql: str, **params: Any) -> Any:
    with db.read() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def kept_versions(db: Database, table: str) -> list[int]:
    """Numbers of the versions of `table` kept besides the current one, oldest first."""
    from backend.tracking import versions

    with db.read() as conn:
        return [v.version for v in versions.versions_of(conn, db, table) if v.state == versions.KEPT]


def version_count(db: Database, table: str, version: int) -> int:
    """Rows of version `version` of `table`, counted in the table that holds it."""
    from backend.tracking import versions

    with db.read() as conn:
        row = versions.version_of(conn, db, table, version)
        assert row is not None, f"{table} has no version {version}"
        held = sa.Table(row.object_name, sa.MetaData(), schema=row.object_schema, autoload_with=conn)
        return int(conn.execute(sa.select(sa.func.count()).select_from(held)).scalar_one())
