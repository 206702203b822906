"""What the WAL checkpoint costs a SQLite fullload, with the current settings and alternatives.

Loads the generated file twice into a fresh database (the second load is a fullload that swaps a
new version in, the case measured) and reports, for that second load: its wall time, the time
spent in COMMITs (SQLite runs its automatic checkpoints inside the COMMIT that crosses
``wal_autocheckpoint``), the publish COMMIT alone, an explicit checkpoint afterwards and the WAL
left behind. Variants (``--variant``):

- ``current``: what ``backend/db/sqlite.py`` sets (WAL, synchronous=FULL, autocheckpoint 1000 pages);
- ``no-autocheckpoint``: wal_autocheckpoint=0 during the load, one PASSIVE checkpoint after it;
- ``normal``: synchronous=NORMAL (autocheckpoint as now);
- ``normal-no-autocheckpoint``: both.

Usage: ``python -m bench.wal_checkpoint --file <generated file> --rounds 2`` (the 100 MB file of
``bench/run`` is ``/tmp/refdata-bench/data/refdata_100MB_comma_utf-8_lf_s1_v2.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from backend.config import Settings
from backend.db import open_database
from backend.load.loader import load_file
from backend.models import LoadRequest

VARIANTS = ("current", "no-autocheckpoint", "normal", "normal-no-autocheckpoint")
SCHEMAS = ("main", "bkp", "ref")


def run(file: Path, variant: str, workdir: Path) -> dict[str, Any]:
    """Two fullloads of `file` into a fresh database under `workdir`; figures of the second."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=SecretStr(f"sqlite:///{workdir / 'refdata.db'}"),
        data_dir=workdir / "data",
        dropoff_base_path=workdir / "dropoff",
        config_dir=workdir / "config",
        health_enabled=False,
    )
    db = open_database(settings)
    db.init_db()
    db.engine.dispose()
    commits: list[tuple[float, bool]] = []
    renamed = [False]

    @sa.event.listens_for(db.engine, "connect")
    def _variant(dbapi_conn: Any, _record: Any) -> None:
        # After the product's own listener: these override what it set.
        for schema in SCHEMAS:
            if "no-autocheckpoint" in variant:
                dbapi_conn.execute(f"PRAGMA {schema}.wal_autocheckpoint = 0")
            if variant.startswith("normal"):
                dbapi_conn.execute(f"PRAGMA {schema}.synchronous = NORMAL")

    @sa.event.listens_for(db.engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "RENAME TO" in statement:
            renamed[0] = True

    dialect = db.engine.dialect
    do_commit = dialect.do_commit

    def timed_commit(dbapi_connection: Any) -> None:
        start = time.perf_counter()
        do_commit(dbapi_connection)
        commits.append((time.perf_counter() - start, renamed[0]))
        renamed[0] = False

    dialect.do_commit = timed_commit  # type: ignore[method-assign]
    load_file(db, settings, LoadRequest(path=file))
    # The same name (the same table) with other bytes: a new version, not a duplicate.
    second = workdir / "second" / file.name
    second.parent.mkdir()
    shutil.copyfile(file, second)
    with second.open("rb+") as f:
        f.seek(-4096, os.SEEK_END)
        last = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        f.write(last + b"\n")
    commits.clear()
    start = time.perf_counter()
    result = load_file(db, settings, LoadRequest(path=second))
    load_seconds = time.perf_counter() - start
    wal_bytes = _wal_bytes(workdir)
    checkpoint: dict[str, float] = {}
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        if raw is None:
            raise RuntimeError("no SQLite connection behind the pool's")
        for schema in SCHEMAS:
            start = time.perf_counter()
            raw.execute(f"PRAGMA {schema}.wal_checkpoint(PASSIVE)").fetchone()
            checkpoint[schema] = time.perf_counter() - start
    db.dispose()
    publish = [s for s, swapped in commits if swapped]
    return {
        "variant": variant,
        "rows": result.rows_loaded,
        "load_seconds": round(load_seconds, 3),
        "commits": len(commits),
        "commit_seconds_total": round(sum(s for s, _ in commits), 3),
        "commit_seconds_max": round(max((s for s, _ in commits), default=0.0), 4),
        "publish_commit_seconds": round(publish[-1], 4) if publish else None,
        "wal_mb_before_checkpoint": round(wal_bytes / 1e6, 1),
        "checkpoint_seconds": round(sum(checkpoint.values()), 3),
    }


def _wal_bytes(workdir: Path) -> int:
    return sum(p.stat().st_size for p in workdir.glob("*.db-wal"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", type=Path, required=True)
    p.add_argument("--variant", choices=VARIANTS, action="append")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=None, help="on the disk to measure (not tmpfs)")
    args = p.parse_args()
    for _ in range(args.rounds):
        for variant in args.variant or VARIANTS:
            workdir = Path(tempfile.mkdtemp(prefix="walbench-", dir=args.workdir))
            try:
                figures = run(args.file, variant, workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            figures["loadavg_1m"] = round(os.getloadavg()[0], 2)
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
