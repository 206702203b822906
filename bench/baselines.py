"""The Python baselines the product is compared with, each run as its own process by the runner.

- ``pandas``: what a typical Python user writes: ``pd.read_csv(path)`` then
  ``df.to_sql(table, engine, if_exists="replace", index=False)`` (pandas' own type guessing,
  SQLAlchemy's default executemany path).
- ``upstream``: the approach of the upstream reference_data_mgr loader, rebuilt from its
  description: pandas reads the whole file as text (``dtype=str``, no NA guessing), every cell
  goes through a strip/NULL-word cleaning function, and the rows are sent as parameterized
  multi-row ``INSERT ... VALUES`` statements of 990 rows (``df.iterrows()`` builds each batch's
  flat parameter list), all in one transaction, into a table of varchar columns plus the two
  load metadata columns it adds.

Usage (the runner passes the URL of a scratch database)::

    python -m bench.baselines pandas|upstream FILE --database-url URL --table NAME
        [--delimiter ,] [--encoding utf-8]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

UPSTREAM_BATCH_ROWS = 990


def pandas_to_sql(path: Path, url: str, table: str, delimiter: str, encoding: str) -> int:
    """Read the whole file with pandas defaults and write it with ``to_sql``; returns rows written."""
    engine = sa.create_engine(url)
    try:
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding)
        frame.to_sql(table, engine, if_exists="replace", index=False)
        return len(frame)
    finally:
        engine.dispose()


def _prepare_value(value: Any) -> str | None:
    # As upstream: strip, and '' / none / nan / null become NULL (a silent data change we do not copy).
    if value is None:
        return None
    text = str(value).strip()
    if text == "" or text.lower() in {"none", "nan", "null"}:
        return None
    return text


def upstream_insert(path: Path, url: str, table: str, delimiter: str, encoding: str) -> int:
    """Whole-file pandas read, then 990-row parameterized INSERT statements in one transaction."""
    frame = pd.read_csv(
        path, sep=delimiter, encoding=encoding, dtype=str, keep_default_na=False, na_values=[]
    )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            columns = [*frame.columns, "ref_data_loadtime", "ref_data_loadtype"]
            defs = ", ".join(f"{quote(c)} VARCHAR(4000)" for c in frame.columns)
            with conn.begin():
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(table)}")
                conn.exec_driver_sql(
                    f"CREATE TABLE {quote(table)} ({defs}, ref_data_loadtime TIMESTAMP, "
                    "ref_data_loadtype VARCHAR(1))"
                )
            marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            one_row = "(" + ", ".join([marker] * len(columns)) + ")"
            column_list = ", ".join(quote(c) for c in columns)
            now = datetime.now(UTC).replace(tzinfo=None)
            dbapi = conn.connection.driver_connection
            cursor = dbapi.cursor()  # type: ignore[union-attr]
            with conn.begin():
                for start in range(0, len(frame), UPSTREAM_BATCH_ROWS):
                    part = frame.iloc[start : start + UPSTREAM_BATCH_ROWS]
                    params: list[Any] = []
                    for _, row in part.iterrows():
                        params.extend(_prepare_value(row[c]) for c in frame.columns)
                        params.extend((now, "F"))
                    statement = (
                        f"INSERT INTO {quote(table)} ({column_list}) VALUES "  # noqa: S608 - bench's own names
                        + ", ".join([one_row] * len(part))
                    )
                    cursor.execute(statement, params)
            cursor.close()
        return len(frame)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__.splitlines()[0])
    p.add_argument("approach", choices=["pandas", "upstream"])
    p.add_argument("file", type=Path)
    p.add_argument("--database-url", required=True)
    p.add_argument("--table", default="bench_baseline")
    p.add_argument("--delimiter", default=",")
    p.add_argument("--encoding", default="utf-8")
    args = p.parse_args(argv)
    run = pandas_to_sql if args.approach == "pandas" else upstream_insert
    started = time.perf_counter()
    rows = run(args.file, args.database_url, args.table, args.delimiter, args.encoding)
    print(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - started, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
