"""Read tables back out: export to CSV under the original header, and restore a bkp version."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend import tracking
from backend.db.engine import Database
from backend.errors import IngestError, NotFoundError
from backend.load.convert import render
from backend.load.plan import data_columns
from backend.load.publish import publish
from backend.models import ColumnKind, ColumnType, LoadRequest, LoadType, TablePlan
from backend.naming import normalize_identifier


def _table(conn: Connection, db: Database, table: str, schema: str) -> sa.Table:
    name = normalize_identifier(table) or table
    found = db.reflect(conn, name, schema)
    if found is None:
        raise NotFoundError(f"table {schema}.{name} does not exist")
    return found


def original_headers(conn: Connection, db: Database, load_id: int | None) -> dict[str, str]:
    """normalised column name -> header cell as written in the file of load `load_id`."""
    if load_id is None:
        return {}
    t = db.catalog.tracking
    row = conn.execute(sa.select(t.c.detected_headers, t.c.detection).where(t.c.id == load_id)).first()
    if row is None or not row.detected_headers or not row.detection:
        return {}
    headers = json.loads(row.detected_headers)
    columns = json.loads(row.detection).get("columns", [])
    if json.loads(row.detection).get("header_rows", 1) == 0:
        return {}
    return dict(zip(columns, headers, strict=False))


class _Writer:
    """CSV rows with LF line ends, quoting every value a reader could split: a delimiter, a quote,
    a LF or a lone CR (the csv module quotes only the characters of its own line terminator)."""

    def __init__(self, out: TextIO) -> None:
        self._plain = csv.writer(out, lineterminator="\n")
        self._quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, values: list[str]) -> None:
        if any("\r" in v for v in values):
            self._quoted.writerow(values)
        else:
            self._plain.writerow(values)


def export_table(
    db: Database, table: str, out: TextIO, *, version: int | None = None, sql_names: bool = False
) -> int:
    """Write the rows of ``ref.<table>`` (or bkp version `version`) as UTF-8 CSV; returns the row count.

    Rows come in file order (load, then row number), without metadata columns, under the header
    as it appeared in the loaded file unless `sql_names`.
    """
    with db.read() as conn:
        if version is None:
            source = _table(conn, db, table, db.catalog.data_schema)
            where: Any = sa.true()
        else:
            source = _table(conn, db, table, db.catalog.backup_schema)
            where = source.c._bkp_version == version
            if conn.execute(sa.select(sa.func.count()).select_from(source).where(where)).scalar_one() == 0:
                raise NotFoundError(f"table {source.schema}.{source.name} has no version {version}")
        columns = data_columns(source)
        last_load = conn.execute(sa.select(sa.func.max(source.c._load_id)).where(where)).scalar()
        names = {} if sql_names else original_headers(conn, db, last_load)
        # How each typed column's values were written in the file (date format, boolean spelling).
        recorded = tracking.types_of_load(conn, db, last_load)
        types = [recorded.get(c) for c in columns]
        writer = _Writer(out)
        writer.writerow([names.get(c, c) for c in columns])
        query = (
            sa.select(*(source.c[c] for c in columns))
            .where(where)
            .order_by(source.c._load_id, source.c._row_number)
        )
        count = 0
        result = conn.execution_options(stream_results=True, yield_per=10000).execute(query)
        for row in result:
            writer.writerow([render(v, t) for v, t in zip(row, types, strict=True)])
            count += 1
    return count


def _conversions(
    db: Database, backup: sa.Table, live: sa.Table, columns: tuple[str, ...], where: Any, version: int
) -> dict[str, Any]:
    """SELECT expressions for columns bkp keeps as text but the live table now types.

    A redefinition (schema_evolution: replace) may have made a column typed again after bkp
    widened it to text. PostgreSQL refuses text into a typed column, and SQLite would take
    "many" into an integer column as it is, so the version's values are checked first, the
    way a load infers types, and converted the way a load converts them.

    Raises:
        IngestError: a value of the version does not fit the current column (nothing changed).
    """
    from backend.detection.types import TypeTracker
    from backend.load.evolve import fits, kind_of

    text_now_typed = [
        c
        for c in columns
        if kind_of(backup.c[c].type) is ColumnKind.TEXT and kind_of(live.c[c].type) is not ColumnKind.TEXT
    ]
    if not text_now_typed:
        return {}
    tracker = TypeTracker(len(text_now_typed))
    present = [0] * len(text_now_typed)
    query = sa.select(*(backup.c[c] for c in text_now_typed)).where(where)
    with db.read() as conn:
        for row in conn.execution_options(yield_per=10_000).execute(query):
            values = ["" if v is None else str(v) for v in row]
            present = [n + (v != "") for n, v in zip(present, values, strict=True)]
            tracker.observe(values)
    found = tracker.result()
    out: dict[str, Any] = {}
    for name, seen, wanted in zip(text_now_typed, present, found, strict=True):
        target = live.c[name].type
        if seen and not fits(target, wanted):
            raise IngestError(
                f"version {version} of {live.name}: column {name} holds {wanted.kind.value} values, "
                f"which the current {kind_of(target).value} column cannot take; nothing was restored"
            )
        out[name] = db.adapter.cast_text(sa.func.nullif(backup.c[name], ""), target, wanted).label(name)
    return out


def restore_version(db: Database, table: str, version: int) -> tuple[int, int, int | None]:
    """Make bkp version `version` current again, as a new versioned fullload.

    Returns (tracking id, rows restored, backup version that now holds the replaced rows).
    """
    with db.read() as conn:
        backup = _table(conn, db, table, db.catalog.backup_schema)
        live = _table(conn, db, table, db.catalog.data_schema)
        where = backup.c._bkp_version == version
        rows, source_load = conn.execute(
            sa.select(sa.func.count(), sa.func.max(backup.c._load_id)).where(where)
        ).one()
        if rows == 0:
            raise NotFoundError(f"table {backup.schema}.{backup.name} has no version {version}")
        t = db.catalog.tracking
        original = conn.execute(
            sa.select(t.c.detected_headers, t.c.detection, t.c.is_reference_data).where(t.c.id == source_load)
        ).first()
        # The restored rows are written back in the formats their own load recorded.
        version_types = tracking.types_of_load(conn, db, source_load)
    columns = tuple(data_columns(live))
    missing = [c for c in columns if c not in backup.c]
    if missing:
        raise IngestError(f"version {version} lacks columns {missing} of the live table; cannot restore")
    request = LoadRequest(
        path=Path(f"{backup.schema}.{backup.name}@{version}"),
        load_type=LoadType.FULLLOAD,
        is_reference=bool(original.is_reference_data) if original else False,
    )
    converted = _conversions(db, backup, live, columns, where, version)
    tracking_id = tracking.start(db, request, table=live.name, size=None, mtime=None)
    plan = TablePlan(
        live.name, columns, columns, tuple(ColumnType() for _ in columns), exists=True, stored=version_types
    )
    source = sa.select(backup.c._row_number, *(converted.get(c, backup.c[c]) for c in columns)).where(where)
    try:
        with db.write() as conn:
            published = publish(
                conn,
                db,
                plan,
                source,
                load_type=LoadType.FULLLOAD,
                tracking_id=tracking_id,
                expected_rows=int(rows),
                column_types=plan.column_types,
                is_reference=request.is_reference,
                tracking_values={
                    "rows_read": int(rows),
                    "rows_rejected": 0,
                    "detected_headers": original.detected_headers if original else None,
                    "detection": original.detection if original else None,
                },
                convert=False,
            )
    except BaseException as exc:
        tracking.finish_failed(db, tracking_id, "error", exc)
        raise
    return tracking_id, published.rows_loaded, published.backup_version
