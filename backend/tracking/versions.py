"""The version catalogue: which whole table holds each content a reference table has had.

A fullload never copies rows to keep the previous content: the new content is loaded into a
table of its own and the tables change places (`backend.load.versions`). This catalogue says
where each version is now, which load made it and whether it is the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.tracking.events import utcnow

CURRENT, KEPT, DROPPED = "current", "kept", "dropped"
#: A new version being filled where the database commits while loading (SQLite): its table exists,
#: its rows are not published yet; a crash leaves it to `backend.load.versions.drop_abandoned`.
LOADING = "loading"


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One content of a table and the table that holds it."""

    id: int
    table_name: str
    version: int
    object_schema: str
    object_name: str
    state: str
    attached: bool
    load_id: int
    row_count: int | None
    created_at: datetime
    replaced_at: datetime | None

    @property
    def current(self) -> bool:
        return self.state == CURRENT


def _rows(conn: Connection, db: Database, *where: sa.ColumnElement[bool]) -> list[VersionRow]:
    v = db.catalog.versions
    found = conn.execute(sa.select(v).where(*where).order_by(v.c.version)).mappings().all()
    return [
        VersionRow(
            id=int(r["id"]),
            table_name=r["table_name"],
            version=int(r["version"]),
            object_schema=r["object_schema"],
            object_name=r["object_name"],
            state=r["state"],
            attached=bool(r["attached"]),
            load_id=int(r["load_id"]),
            row_count=None if r["row_count"] is None else int(r["row_count"]),
            created_at=r["created_at"],
            replaced_at=r["replaced_at"],
        )
        for r in found
    ]


def versions_of(
    conn: Connection, db: Database, table: str, *, include_dropped: bool = False
) -> list[VersionRow]:
    """Every published version of `table`, oldest first."""
    v = db.catalog.versions
    where = [v.c.table_name == table, v.c.state != LOADING]
    where += [] if include_dropped else [v.c.state != DROPPED]
    return _rows(conn, db, *where)


def all_versions(conn: Connection, db: Database) -> list[VersionRow]:
    """Every catalogued version of every table, dropped ones included."""
    return _rows(conn, db)


def current_version(conn: Connection, db: Database, table: str) -> VersionRow | None:
    v = db.catalog.versions
    found = _rows(conn, db, v.c.table_name == table, v.c.state == CURRENT)
    return found[-1] if found else None


def version_of(conn: Connection, db: Database, table: str, version: int) -> VersionRow | None:
    v = db.catalog.versions
    found = _rows(conn, db, v.c.table_name == table, v.c.version == version, v.c.state != DROPPED)
    return found[0] if found else None


def loading_versions(conn: Connection, db: Database) -> list[VersionRow]:
    """Versions whose rows are still being written (or whose load died while writing them)."""
    v = db.catalog.versions
    return _rows(conn, db, v.c.state == LOADING)


def next_version(conn: Connection, db: Database, table: str) -> int:
    """The number the next content of `table` gets (dropped versions' numbers are never reused)."""
    v = db.catalog.versions
    top = conn.execute(sa.select(sa.func.max(v.c.version)).where(v.c.table_name == table)).scalar()
    return int(top or 0) + 1


def add_version(
    conn: Connection,
    db: Database,
    *,
    table: str,
    version: int,
    schema: str,
    name: str,
    load_id: int,
    rows: int,
    state: str = CURRENT,
    attached: bool = True,
) -> None:
    """Register a new version (inside the transaction that publishes it)."""
    conn.execute(
        sa.insert(db.catalog.versions).values(
            table_name=table,
            version=version,
            object_schema=schema,
            object_name=name,
            state=state,
            attached=attached,
            load_id=load_id,
            row_count=rows,
            created_at=utcnow(),
        )
    )


def move_version(
    conn: Connection,
    db: Database,
    row: VersionRow,
    *,
    state: str,
    schema: str | None = None,
    name: str | None = None,
    attached: bool | None = None,
) -> None:
    """Record that a version changed place (current -> kept), name or state."""
    v = db.catalog.versions
    values: dict[str, object] = {"state": state}
    if state == KEPT and row.state == CURRENT:
        values["replaced_at"] = utcnow()
    if schema is not None:
        values["object_schema"] = schema
    if name is not None:
        values["object_name"] = name
    if attached is not None:
        values["attached"] = attached
    conn.execute(sa.update(v).where(v.c.id == row.id).values(**values))


def add_rows(conn: Connection, db: Database, row: VersionRow, count: int) -> None:
    """An append added `count` rows to the current version."""
    v = db.catalog.versions
    conn.execute(sa.update(v).where(v.c.id == row.id).values(row_count=v.c.row_count + count))


def detach_all(conn: Connection, db: Database, table: str) -> None:
    """Every kept version of `table` now stands alone (its bkp parent was rebuilt for a new definition)."""
    v = db.catalog.versions
    conn.execute(sa.update(v).where(v.c.table_name == table, v.c.state == KEPT).values(attached=False))


def set_rows(conn: Connection, db: Database, row: VersionRow, count: int) -> None:
    v = db.catalog.versions
    conn.execute(sa.update(v).where(v.c.id == row.id).values(row_count=count))


def forget_version(conn: Connection, db: Database, row: VersionRow) -> None:
    """Remove a version that was never published (its number is free for the next attempt)."""
    v = db.catalog.versions
    conn.execute(sa.delete(v).where(v.c.id == row.id, v.c.state == LOADING))
