"""The product runs with requirements.txt alone, as deployed: no package of the dev venv helps.

The dev venv holds pytest, pandas and friends, which can hide a missing runtime requirement (it
did: pyarrow's to_numpy needs NumPy, which pyarrow does not require, and every load through the
Arrow path failed in a runtime-only install). So these loads run in bench/.venv-runtime, made by
bench/setup_runtime.sh from requirements.txt only (the benchmarks run ours in it too).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PYTHON = ROOT / "bench" / ".venv-runtime" / "bin" / "python"


@pytest.fixture(scope="module")
def runtime_python() -> Path:
    subprocess.run([str(ROOT / "bench" / "setup_runtime.sh")], check=True, capture_output=True, timeout=600)
    return RUNTIME_PYTHON


def _load(python: Path, path: Path, url: str, tmp_path: Path, *extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR=str(tmp_path / "data"), ARROW_MIN_BYTES="0")
    done = subprocess.run(
        [str(python), "-m", "backend", "--env-file", os.devnull, "load", str(path), "--database-url", url,
         "--json", *extra],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_runtime_venv_has_no_development_package(runtime_python: Path) -> None:
    for name in ("pytest", "pandas", "hypothesis"):
        found = subprocess.run(
            [str(runtime_python), "-c", f"import importlib.util as u; print(u.find_spec({name!r}) is None)"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert found == "True", name


@pytest.mark.parametrize("types", ["text", "infer"])
def test_a_load_through_every_stage_runs_on_the_runtime_requirements_alone(
    runtime_python: Path, db_url: str, tmp_path: Path, types: str
) -> None:
    """A CSV read by the Arrow reader where the database takes Arrow (PostgreSQL), checked,
    profiled and published; then a Parquet file (pyarrow's reader) as an append."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = tmp_path / "runtime_check.csv"
    csv_path.write_text(
        "id,name,amount,day\n" + "".join(f"{i},n{i},{i}.50,2024-01-{1 + i % 28:02d}\n" for i in range(3000)),
        encoding="utf-8",
    )
    first = _load(runtime_python, csv_path, db_url, tmp_path, "--table", "runtime_check", "--types", types)
    assert first["rows_loaded"] == 3000
    parquet_path = tmp_path / "more.parquet"
    pq.write_table(
        pa.table({"id": ["3000"], "name": ["n3000"], "amount": ["3000.50"], "day": ["2024-02-01"]}),
        parquet_path,
    )
    second = _load(
        runtime_python, parquet_path, db_url, tmp_path, "--table", "runtime_check", "--mode", "append"
    )
    assert second["rows_loaded"] == 1
