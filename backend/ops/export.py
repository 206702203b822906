"""Read tables back out: a table or one of its versions as CSV, under the file's original header."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend import tracking
from backend.db.engine import Database
from backend.errors import NotFoundError
from backend.load import versions
from backend.load.convert import render
from backend.load.plan import data_columns
from backend.naming import normalize_identifier
from backend.tracking import versions as catalogue


def table_name(table: str) -> str:
    """An operator's table name as the product normalises it (``Countries`` -> ``countries``)."""
    return normalize_identifier(table) or table


def adopt(db: Database, table: str) -> None:
    """Bring a table an earlier release made into the version layout before reading its versions."""
    with db.write() as conn:
        versions.adopt_legacy(conn, db, table_name(table))


def version_source(conn: Connection, db: Database, table: str, version: int | None) -> sa.Table:
    """The table that holds ``ref.<table>`` (`version` None) or its version `version`."""
    name = table_name(table)
    if version is None:
        found = db.reflect(conn, name, db.catalog.data_schema)
        if found is None:
            raise NotFoundError(f"table {db.catalog.data_schema}.{name} does not exist")
        return found
    row = catalogue.version_of(conn, db, name, version)
    if row is None:
        known = [v.version for v in catalogue.versions_of(conn, db, name)]
        raise NotFoundError(
            f"table {name} has no version {version}"
            + (f" (versions kept: {', '.join(map(str, known))})" if known else "")
        )
    return versions.version_table(conn, db, row)


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


def had_header(conn: Connection, db: Database, load_id: int | None) -> bool:
    """Whether the file of load `load_id` had a header row (True when unknown: an older load)."""
    if load_id is None:
        return True
    t = db.catalog.tracking
    text = conn.execute(sa.select(t.c.detection).where(t.c.id == load_id)).scalar()
    return not text or json.loads(text).get("header_rows", 1) != 0


def _content_load(conn: Connection, db: Database, table: str, version: int | None) -> int | None:
    """The load whose file gave the table (or version) its contents, found without its rows.

    A table loaded from a header-only file has no rows whose ``_load_id`` would say it.
    """
    name = table_name(table)
    row = (
        catalogue.current_version(conn, db, name)
        if version is None
        else catalogue.version_of(conn, db, name, version)
    )
    return row.load_id if row is not None else None


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
    db: Database,
    table: str,
    out: TextIO,
    *,
    version: int | None = None,
    sql_names: bool = False,
    names: bool = False,
) -> int:
    """Write the rows of ``ref.<table>`` (or bkp version `version`) as UTF-8 CSV; returns the row count.

    Rows come in file order (load, then row number), without metadata columns, under the header
    as it appeared in the loaded file unless `sql_names`. A table whose file had no header is
    written without one, as the file was, unless `names` or `sql_names` ask for the column names.
    """
    adopt(db, table)
    with db.read() as conn:
        source = version_source(conn, db, table, version)
        where: Any = sa.true()
        columns = data_columns(source)
        last_load = conn.execute(sa.select(sa.func.max(source.c._load_id)).where(where)).scalar()
        if last_load is None:
            last_load = _content_load(conn, db, table, version)
        originals = {} if sql_names else original_headers(conn, db, last_load)
        # How each typed column's values were written in the file (date format, boolean spelling).
        recorded = tracking.types_of_load(conn, db, last_load)
        types = [recorded.get(c) for c in columns]
        writer = _Writer(out)
        if names or sql_names or had_header(conn, db, last_load):
            writer.writerow([originals.get(c, c) for c in columns])
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
