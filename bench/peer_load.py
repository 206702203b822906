"""The library peers of the load benchmark, one load per process, run by bench/peers.py.

This module runs with the peers' own interpreter (bench/.venv-peers, made by
bench/setup_peers.sh), never the product's: it imports nothing from backend/, and each peer's
library only inside its own function, so a missing one fails that peer alone. Each function is
what a user of that library would write for "load this CSV into a new table", with the
library's defaults, and nothing of ours (no type policy, no cleaning, no tracking rows).

Usage::

    python -m bench.peer_load adbc|duckdb|pandas|dlt FILE (--sqlite DB | --postgres URI) --table T

``URI`` is a libpq URI (``postgresql://user@host:port/database``). Prints one JSON line with the
row count the library reported (bench/peers.py checks the table itself afterwards).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time


def adbc(path: pathlib.Path, sqlite: str | None, postgres: str | None, table: str) -> int:
    """``adbc_ingest`` fed by pyarrow's streaming CSV reader, one transaction."""
    import pyarrow.csv as pacsv

    # open_csv reads block by block, so memory stays flat; the column types are inferred from
    # the first block only and a later block that does not fit them fails the whole load.
    reader = pacsv.open_csv(path)
    if sqlite is not None:
        import adbc_driver_sqlite.dbapi as driver

        conn = driver.connect(sqlite)
    else:
        import adbc_driver_postgresql.dbapi as pg_driver

        conn = pg_driver.connect(postgres or "")
    with conn, conn.cursor() as cursor:
        rows = cursor.adbc_ingest(table, reader, mode="create")
        conn.commit()
    return int(rows)


def _duckdb_extension(name: str) -> pathlib.Path:
    """The extension file inside its PyPI wheel (``<package>/extensions/v<duckdb>/<name>...``)."""
    import importlib

    import duckdb

    package = importlib.import_module(f"duckdb_extension_{name}")
    folder = pathlib.Path(package.__file__ or "").parent / "extensions" / f"v{duckdb.__version__}"
    return folder / f"{name}.duckdb_extension"


def _literal(text: str) -> str:
    # ATTACH takes no bound parameters, so the path or URI goes in as a quoted SQL literal.
    return "'" + text.replace("'", "''") + "'"


def duckdb_load(path: pathlib.Path, sqlite: str | None, postgres: str | None, table: str) -> int:
    """DuckDB ``read_csv`` (its sniffer and type detection) into an attached database."""
    import duckdb

    # INSTALL would download the extension; offline it fails, so autoloading is switched off
    # and the extension that the wheel ships is loaded by its path.
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        if sqlite is not None:
            con.execute(f"LOAD '{_duckdb_extension('sqlite_scanner')}'")
            con.execute(f"ATTACH {_literal(sqlite)} AS target (TYPE sqlite)")
        else:
            con.execute(f"LOAD '{_duckdb_extension('postgres_scanner')}'")
            con.execute(f"ATTACH {_literal(postgres or '')} AS target (TYPE postgres)")
        source = f"read_csv({_literal(str(path))})"
        con.execute(f'CREATE TABLE target."{table}" AS SELECT * FROM {source}')  # noqa: S608 - our names
        row = con.execute(f'SELECT count(*) FROM target."{table}"').fetchone()  # noqa: S608
    finally:
        con.close()
    return int(row[0]) if row else 0


def pandas_load(path: pathlib.Path, sqlite: str | None, postgres: str | None, table: str) -> int:
    """``pd.read_csv`` then ``to_sql``, exactly as bench/baselines.py's pandas baseline."""
    from bench.baselines import pandas_to_sql

    url = f"sqlite:///{sqlite}" if sqlite is not None else _sqlalchemy_postgres(postgres or "")
    return pandas_to_sql(path, url, table, ",", "utf-8")


def _sqlalchemy_postgres(uri: str) -> str:
    return "postgresql+psycopg://" + uri.split("://", 1)[1]


def dlt_load(path: pathlib.Path, sqlite: str | None, postgres: str | None, table: str) -> int:
    """dlt's filesystem source ``read_csv`` (pandas chunks), ``replace`` into a new dataset.

    The dataset is named like the table: on PostgreSQL it is a schema, on SQLite a database file
    ``<db>__<dataset>.db`` that dlt attaches next to the one given.
    """
    import dlt
    from dlt.sources.filesystem import readers

    if sqlite is not None:
        destination = dlt.destinations.sqlalchemy(credentials=f"sqlite:///{sqlite}")
    else:
        destination = dlt.destinations.postgres(credentials=_with_password(postgres or ""))
    resource = readers(bucket_url=str(path.parent), file_glob=path.name).read_csv().with_name(table)
    with tempfile.TemporaryDirectory(prefix="dlt-") as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name="peer",
            pipelines_dir=pipelines_dir,
            destination=destination,
            dataset_name=table,
        )
        pipeline.run(resource, write_disposition="replace")
        counts = pipeline.last_trace.last_normalize_info.row_counts
    return int(counts.get(table, 0))


def _with_password(uri: str) -> str:
    """dlt refuses credentials without a password; a trust-auth server ignores the one given."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is not None or parts.username is None:
        return uri
    host = parts.netloc.split("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:unused@{host}"))


LOADERS = {"adbc": adbc, "duckdb": duckdb_load, "pandas": pandas_load, "dlt": dlt_load}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peer_load", description=__doc__.splitlines()[0])
    p.add_argument("peer", choices=sorted(LOADERS))
    p.add_argument("file", type=pathlib.Path)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--sqlite", help="SQLite database file")
    target.add_argument("--postgres", help="libpq URI of the PostgreSQL database")
    p.add_argument("--table", required=True)
    args = p.parse_args(argv)
    started = time.perf_counter()
    rows = LOADERS[args.peer](args.file, args.sqlite, args.postgres, args.table)
    print(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - started, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
