"""Make a kept version current again: a new version, copied from the old one into today's definition.

Restore is the one place versions are copied row by row (it is rare, and the copy is what keeps
every version untouched): the old version's rows go into a new version table with the live
table's current columns, then the ordinary publish swaps it in, so the content it replaces is
kept as a version too. A column the old version lacks is NULL; a column whose type changed since
is converted exactly (written back as its file's text, or checked and parsed), or the restore is
refused with the reason and nothing changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend import tracking
from backend.db.engine import Database
from backend.errors import IngestError
from backend.load import versions
from backend.load.evolve import column_type_of, fits, kind_of
from backend.load.plan import data_columns, final_types, metadata_columns
from backend.load.publish import Written, publish
from backend.models import ColumnKind, ColumnType, LoadRequest, LoadType, TablePlan
from backend.ops.export import adopt, table_name, version_source
from backend.tracking import versions as catalogue
from backend.tracking.events import utcnow


def restore_version(db: Database, table: str, version: int) -> tuple[int, int, int | None]:
    """Make version `version` of `table` current again, as a new versioned fullload.

    Returns (tracking id, rows restored, number of the version that now keeps the replaced rows).
    """
    name = table_name(table)
    adopt(db, name)
    with db.read() as conn:
        source = version_source(conn, db, name, version)
        live = version_source(conn, db, name, None)
        rows, source_load = conn.execute(sa.select(sa.func.count(), sa.func.max(source.c._load_id))).one()
        t = db.catalog.tracking
        original = conn.execute(
            sa.select(t.c.detected_headers, t.c.detection, t.c.is_reference_data).where(t.c.id == source_load)
        ).first()
        recorded = tracking.types_of_load(conn, db, source_load)
    columns = tuple(data_columns(live))
    request = LoadRequest(
        path=Path(f"{name}@version{version}"),
        load_type=LoadType.FULLLOAD,
        is_reference=bool(original.is_reference_data) if original else False,
    )
    tracking_id = tracking.start(db, request, table=name, size=None, mtime=None)
    try:
        with db.engine.connect() as conn:
            db.adapter.begin_write(conn)
            db.adapter.serialize_publish(conn, db.catalog.data_schema, name)
            number = catalogue.next_version(conn, db, name)
            definition = [sa.Column(c, live.c[c].type, nullable=True) for c in columns] + metadata_columns()
            new = versions.create_version(conn, db, name, number, definition)
            values = _conversions(conn, db, source, live, columns, recorded, version)
            conn.execute(
                sa.insert(new).from_select(
                    [*columns, "_load_id", "_row_number", "_loaded_at", "_load_type", "_version"],
                    sa.select(
                        *values,
                        sa.literal(tracking_id, sa.BigInteger),
                        sa.func.row_number().over(order_by=(source.c._load_id, source.c._row_number)),
                        sa.literal(utcnow(), sa.DateTime),
                        sa.literal(LoadType.FULLLOAD.value, sa.String(16)),
                        sa.literal(number, sa.Integer),
                    ),
                )
            )
            plan = TablePlan(name, columns, columns, tuple(ColumnType() for _ in columns), exists=True)
            stored = final_types(new, plan, recorded, columns)
            published = publish(
                conn,
                db,
                Written(name, new, LoadType.FULLLOAD, number, int(rows), stored),
                tracking_id=tracking_id,
                is_reference=request.is_reference,
                tracking_values={
                    "rows_read": int(rows),
                    "rows_rejected": 0,
                    "detected_headers": original.detected_headers if original else None,
                    "detection": original.detection if original else None,
                },
            )
            conn.commit()
    except BaseException as exc:
        tracking.finish_failed(db, tracking_id, "error", exc)
        raise
    return tracking_id, published.rows_loaded, published.backup_version


def _conversions(
    conn: Connection,
    db: Database,
    source: sa.Table,
    live: sa.Table,
    columns: tuple[str, ...],
    recorded: dict[str, ColumnType],
    version: int,
) -> list[Any]:
    """The SELECT expression giving each current column its value from the old version.

    Same kind: as stored. Now text: the old value written back as its file's text. Now typed but
    stored as something else: the old values (as text) are checked the way a load infers types,
    and converted the way a load converts them; a value that does not fit refuses the restore.

    Raises:
        IngestError: a value of the version does not fit the current column (nothing changed).
    """
    out: list[Any] = []
    retyped: list[str] = []
    for name in columns:
        if name not in source.c:
            out.append(sa.null().label(name))
            continue
        have, want = kind_of(source.c[name].type), kind_of(live.c[name].type)
        same_scale = getattr(source.c[name].type, "scale", None) == getattr(live.c[name].type, "scale", None)
        if have is want and (have is not ColumnKind.DECIMAL or same_scale):
            out.append(source.c[name].label(name))
        elif want is ColumnKind.TEXT:
            out.append(
                db.adapter.render_text(source.c[name], _with_format(source, name, recorded)).label(name)
            )
        else:
            retyped.append(name)
            out.append(None)
    if retyped:
        converted = _checked(conn, db, source, live, retyped, recorded, version)
        out = [converted.get(c, e) if e is None else e for c, e in zip(columns, out, strict=True)]
    return out


def _with_format(source: sa.Table, name: str, recorded: dict[str, ColumnType]) -> ColumnType:
    base = column_type_of(source.c[name].type)
    known = recorded.get(name)
    if known is not None and known.kind is base.kind:
        return ColumnType(
            base.kind, 0, base.precision, base.scale, known.date_format, known.true_text, known.false_text
        )
    return base


def _checked(
    conn: Connection,
    db: Database,
    source: sa.Table,
    live: sa.Table,
    names: list[str],
    recorded: dict[str, ColumnType],
    version: int,
) -> dict[str, Any]:
    from backend.detection.types import TypeTracker

    text = {
        n: db.adapter.render_text(source.c[n], _with_format(source, n, recorded))
        if kind_of(source.c[n].type) is not ColumnKind.TEXT
        else source.c[n]
        for n in names
    }
    tracker = TypeTracker(len(names))
    present = [0] * len(names)
    for row in conn.execution_options(yield_per=10_000).execute(sa.select(*text.values())):
        values = ["" if v is None else str(v) for v in row]
        present = [n + (v != "") for n, v in zip(present, values, strict=True)]
        tracker.observe(values)
    out: dict[str, Any] = {}
    for name, seen, wanted in zip(names, present, tracker.result(), strict=True):
        target = live.c[name].type
        if seen and not fits(target, wanted):
            raise IngestError(
                f"version {version} of {live.name}: column {name} holds {wanted.kind.value} values, "
                f"which the current {kind_of(target).value} column cannot take; nothing was restored"
            )
        out[name] = db.adapter.cast_text(sa.func.nullif(text[name], ""), target, wanted).label(name)
    return out
