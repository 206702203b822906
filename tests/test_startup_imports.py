"""What a small load imports: the fixed cost of `load` on a small file is mostly imports.

pyarrow and numpy (about 0.1 s), PostgreSQL's SQLAlchemy dialect (30 ms) are needed only for
big files, other formats or other databases; a CSV of a few rows loaded into SQLite must not
pay for them (issue "A columnar data path", start-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json, sys
from backend.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _load_modules(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REFDATA_"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], set(result["modules"])


def test_a_small_csv_load_into_sqlite_imports_neither_pyarrow_nor_postgresql(tmp_path: Path) -> None:
    (tmp_path / "small.csv").write_text("code,name\nA,one\nB,two\n", encoding="utf-8")
    code, modules = _load_modules(tmp_path, "load", "small.csv", "--mode", "fullload")
    assert code == 0
    assert "backend.load.loader" in modules  # the probe did load the file
    assert not {"pyarrow", "numpy", "sqlalchemy.dialects.postgresql"} & modules


def test_a_parquet_load_still_imports_pyarrow(tmp_path: Path) -> None:
    """The probe sees imports: a format that needs pyarrow shows it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"code": ["A", "B"]}), tmp_path / "small.parquet")
    code, modules = _load_modules(tmp_path, "load", "small.parquet", "--mode", "fullload")
    assert code == 0
    assert "pyarrow" in modules
