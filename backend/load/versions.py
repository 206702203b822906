"""Versions as whole tables that change place: create one, swap it in, keep or drop the old ones.

A fullload loads its rows into a table of their own (`create_version`); publishing swaps that
table in as ``ref.<table>`` and moves the replaced one to its kept place as metadata only
(`swap_in`: PostgreSQL partitions change parents, SQLite renames, SQL Server switches). No row is
copied to keep a version. The catalogue (`backend.tracking.versions`) says where each one is.

Tables made by releases that copied rows into one ``bkp.<table>`` are migrated the first time a
load or `init-db` meets them (`adopt_legacy`): each kept version becomes a table of its own (that
one copy happens once), the live table becomes the current version.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from backend import faults
from backend.db.engine import Database
from backend.tracking import versions as catalogue
from backend.tracking.versions import CURRENT, KEPT, VersionRow

log = structlog.get_logger(__name__)

#: Columns of a table made by releases before versions were tables of their own.
LEGACY_BACKUP_COLUMNS = ("_bkp_version", "_bkp_load_id", "_bkp_at")


@dataclass(frozen=True, slots=True)
class Swapped:
    """What publishing a version did: its number, and the number the replaced one keeps."""

    version: int
    replaced: int | None


def create_version(
    conn: Connection, db: Database, table: str, version: int, columns: list[sa.Column[object]]
) -> sa.Table:
    """Create the (empty) table version `version` of `table` is loaded into."""
    schema, name = db.adapter.version_place(db.catalog, table, version)
    new = sa.Table(name, sa.MetaData(), *columns, schema=schema)
    new.create(conn)
    db.adapter.prepare_version(conn, new, version)
    return new


def drop_version_table(conn: Connection, db: Database, schema: str, name: str) -> None:
    """Drop a version table (a failed load's, or one retention no longer keeps)."""
    if sa.inspect(conn).has_table(name, schema=schema):
        sa.Table(name, sa.MetaData(), schema=schema).drop(conn)
    db.forget_table(schema, name)


def swap_in(
    conn: Connection, db: Database, *, table: str, new: sa.Table, version: int, load_id: int, rows: int
) -> Swapped:
    """Inside the publish transaction: make `new` current and keep the version it replaces."""
    old = catalogue.current_version(conn, db, table)
    swap = db.adapter.swap_versions(
        conn, db.catalog, table=table, new=new, version=version, old=old.version if old else None
    )
    if old is not None:
        schema, name = db.adapter.kept_place(db.catalog, table, old.version)
        catalogue.move_version(
            conn, db, old, state=KEPT, schema=schema, name=name, attached=swap.old_attached
        )
        if swap.others_detached:
            catalogue.detach_all(conn, db, table)
            catalogue.move_version(conn, db, old, state=KEPT, attached=True)
    schema, name = db.adapter.current_place(db.catalog, table, version)
    pending = catalogue.version_of(conn, db, table, version)
    if pending is None:
        catalogue.add_version(
            conn, db, table=table, version=version, schema=schema, name=name, load_id=load_id, rows=rows
        )
    else:
        catalogue.move_version(conn, db, pending, state=CURRENT, schema=schema, name=name)
        catalogue.set_rows(conn, db, pending, rows)
    for place in {
        (new.schema or "", new.name),
        (db.catalog.data_schema, table),
        (db.catalog.backup_schema, table),
    }:
        db.forget_table(*place)
    return Swapped(version, old.version if old else None)


def set_aside(
    conn: Connection, db: Database, *, table: str, new: sa.Table, version: int, load_id: int, rows: int
) -> None:
    """Inside the publish transaction: keep `new` as a version without making it current."""
    db.adapter.set_aside(conn, db.catalog, table=table, new=new, version=version)
    schema, name = db.adapter.kept_place(db.catalog, table, version)
    pending = catalogue.version_of(conn, db, table, version)
    if pending is None:
        catalogue.add_version(
            conn,
            db,
            table=table,
            version=version,
            schema=schema,
            name=name,
            load_id=load_id,
            rows=rows,
            state=KEPT,
            attached=False,
        )
    else:
        catalogue.move_version(conn, db, pending, state=KEPT, schema=schema, name=name, attached=False)
        catalogue.set_rows(conn, db, pending, rows)
    db.forget_table(new.schema or "", new.name)


def version_table(conn: Connection, db: Database, row: VersionRow) -> sa.Table:
    """The reflected table that holds version `row`."""
    found = db.reflect(conn, row.object_name, row.object_schema)
    if found is None:
        raise LookupError(f"version {row.version} of {row.table_name} is catalogued but its table is missing")
    return found


def prune(conn: Connection, db: Database, table: str, keep: int) -> list[int]:
    """Drop the kept versions of `table` beyond the newest `keep`; returns their numbers."""
    kept = [v for v in catalogue.versions_of(conn, db, table) if v.state == KEPT]
    dropped = []
    for row in kept[: max(0, len(kept) - keep)]:
        drop_version_table(conn, db, row.object_schema, row.object_name)
        faults.hit("retention.prune")
        catalogue.move_version(conn, db, row, state=catalogue.DROPPED)
        dropped.append(row.version)
    return dropped


def adopt_legacy(conn: Connection, db: Database, table: str) -> None:
    """Bring a table made by an earlier release into the version layout, keeping all its versions.

    Earlier releases kept every replaced content as rows of one ``bkp.<table>`` (with
    ``_bkp_version``) and the live rows in a plain ``ref.<table>``. Each kept version becomes a
    table of its own (its rows copied once), then the live table becomes the current version
    (its rows stay where they are).
    """
    live = db.reflect(conn, table, db.catalog.data_schema)
    if live is None:
        return
    listed = catalogue.current_version(conn, db, table)
    if listed is not None:
        if db.adapter.in_version_layout(conn, db.catalog, table):
            return
        # Someone replaced ref.<table> by hand: the version it held went with it.
        catalogue.move_version(conn, db, listed, state=catalogue.DROPPED)
    adapter, catalog = db.adapter, db.catalog
    legacy = db.reflect(conn, table, catalog.backup_schema)
    numbers: list[int] = []
    if legacy is not None and "_bkp_version" in legacy.c:
        numbers = sorted(int(v) for (v,) in conn.execute(sa.select(sa.distinct(legacy.c._bkp_version))))
    current = max((numbers[-1] if numbers else 0) + 1, catalogue.next_version(conn, db, table))
    load_of_live = conn.execute(sa.select(sa.func.max(live.c._load_id))).scalar() or 0
    live_rows = int(conn.execute(sa.select(sa.func.count()).select_from(live)).scalar_one())
    data = [c for c in live.columns if c.name not in LEGACY_BACKUP_COLUMNS and c.name != "_version"]
    if "_version" not in live.c:
        adapter.add_version_column(conn, live, current)
    if legacy is not None:
        kept_columns = [
            c for c in legacy.columns if c.name not in LEGACY_BACKUP_COLUMNS and c.name != "_version"
        ]
        for number in numbers:
            where = legacy.c._bkp_version == number
            rows = int(conn.execute(sa.select(sa.func.count()).select_from(legacy).where(where)).scalar_one())
            load_id = conn.execute(sa.select(sa.func.max(legacy.c._load_id)).where(where)).scalar() or 0
            columns = [sa.Column(c.name, c.type, nullable=True) for c in kept_columns]
            columns.append(sa.Column("_version", sa.Integer, nullable=False))
            schema, name = adapter.kept_place(catalog, table, number)
            kept = sa.Table(name, sa.MetaData(), *columns, schema=schema)
            kept.create(conn)
            adapter.prepare_version(conn, kept, number)
            names = [c.name for c in kept_columns]
            conn.execute(
                sa.insert(kept).from_select(
                    [*names, "_version"],
                    sa.select(*(legacy.c[n] for n in names), sa.literal(number, sa.Integer)).where(where),
                )
            )
            catalogue.add_version(
                conn,
                db,
                table=table,
                version=number,
                schema=schema,
                name=name,
                load_id=int(load_id),
                rows=rows,
                state=KEPT,
                attached=False,
            )
        legacy.drop(conn)
        db.forget_table(catalog.backup_schema, table)
    schema, name = adapter.adopt_current(conn, catalog, table, current)
    catalogue.add_version(
        conn,
        db,
        table=table,
        version=current,
        schema=schema,
        name=name,
        load_id=int(load_of_live),
        rows=live_rows,
    )
    db.forget_table(catalog.data_schema, table)
    log.info("moved a table to the version layout", table=table, versions=len(numbers) + 1, columns=len(data))


def adopt_all(db: Database) -> list[str]:
    """`init-db`: move every table of an earlier release to the version layout now; returns them.

    A loaded table is recognised by its ``_load_id`` column; the product's own tables and version
    tables already in the catalogue are left alone.
    """
    catalog = db.catalog
    own = {t.name for t in (catalog.tracking, catalog.events, catalog.reference_cfg, catalog.versions)}
    with db.read() as conn:
        inspector = sa.inspect(conn)
        names = [
            name
            for name in inspector.get_table_names(schema=catalog.data_schema)
            if name not in own
            and any(c["name"] == "_load_id" for c in inspector.get_columns(name, schema=catalog.data_schema))
        ]
        # SQLite and SQL Server keep version tables beside the live one: those are not tables.
        kept_here = {
            v.object_name
            for v in catalogue.all_versions(conn, db)
            if v.object_schema == catalog.data_schema and v.state != CURRENT
        }
    adopted = []
    for name in names:
        if name in kept_here:
            continue
        with db.write() as conn:
            if catalogue.current_version(conn, db, name) is not None and db.adapter.in_version_layout(
                conn, catalog, name
            ):
                continue
            adopt_legacy(conn, db, name)
        adopted.append(name)
    return adopted


def drop_abandoned(conn: Connection, db: Database, table: str, version: int) -> None:
    """Drop the new version a failed load had started to fill (its table and catalogue entry)."""
    with conn.begin():
        row = catalogue.version_of(conn, db, table, version)
        if row is not None and row.state == catalogue.LOADING:
            drop_version_table(conn, db, row.object_schema, row.object_name)
            catalogue.forget_version(conn, db, row)


def drop_orphans(db: Database) -> int:
    """Drop new versions whose load is over but never published them (a crash, a lost connection).

    Called at start-up and by the recovery job; a version whose load is still running is left alone.
    """
    t = db.catalog.tracking
    dropped = 0
    with db.read() as conn:
        loading = catalogue.loading_versions(conn, db)
        ids = [v.load_id for v in loading]
        query = sa.select(t.c.id).where(t.c.id.in_(ids), t.c.status == "processing")
        running = {int(i) for (i,) in conn.execute(query)} if ids else set()
    for row in loading:
        if row.load_id in running:
            continue
        with db.write() as conn:
            drop_version_table(conn, db, row.object_schema, row.object_name)
            catalogue.forget_version(conn, db, row)
        log.warning("dropped a version its load never published", table=row.table_name, version=row.version)
        dropped += 1
    return dropped
