"""One ADBC load the way the product's columnar sink could do it; run with bench/.venv-peers.

Usage::

    bench/.venv-peers/bin/python bench/adbc_probe.py typed|strings|temp-then-publish FILE TARGET

TARGET is a SQLite file or a libpq URI (``postgresql://...``). ``typed``: pyarrow infers the
column types (as the ADBC peer); ``strings``: every column read as an exact string (the
product's batch type, empty cells stay ""), into a new table ``s``; ``temp-then-publish``: the
strings into a temporary table on ADBC's own connection, then ``CREATE TABLE s AS SELECT`` on
the same connection (a temporary table is visible to that connection only). Prints one JSON
line: rows, seconds, and on PostgreSQL the connect time.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv


def main(argv: list[str]) -> int:
    mode, path, target = argv
    started = time.perf_counter()
    names = pacsv.open_csv(path).schema.names
    strings = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names}, strings_can_be_null=False
    )
    out: dict[str, Any] = {}
    if target.startswith("postgresql"):
        import adbc_driver_postgresql.dbapi as pg_driver

        connect_started = time.perf_counter()
        conn = pg_driver.connect(target)
        out["connect_seconds"] = round(time.perf_counter() - connect_started, 3)
    else:
        import adbc_driver_sqlite.dbapi as sqlite_driver

        conn = sqlite_driver.connect(target)
    with conn, conn.cursor() as cursor:
        if mode == "typed":
            out["rows"] = cursor.adbc_ingest("s", pacsv.open_csv(path), mode="create")
        elif mode == "strings":
            out["rows"] = cursor.adbc_ingest(
                "s", pacsv.open_csv(path, convert_options=strings), mode="create"
            )
        elif mode == "temp-then-publish":
            reader = pacsv.open_csv(path, convert_options=strings)
            out["rows"] = cursor.adbc_ingest("stage", reader, mode="create", temporary=True)
            cursor.execute("CREATE TABLE s AS SELECT * FROM stage")
        else:
            raise SystemExit(f"unknown mode {mode}")
        conn.commit()
    out["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
