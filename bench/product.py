"""The interpreter the product runs with in the benchmarks: as deployed, runtime requirements only.

The development venv also holds the baselines' pandas. pyarrow imports pandas on its first
conversion of a Python value wherever pandas is installed (a pandas-shim check, 0.27-0.4 s per
process measured here), which no deployment of the product pays: requirements.txt has no pandas.
So ours runs in ``bench/.venv-runtime`` (``bench/setup_runtime.sh``), or where
``$BENCH_PRODUCT_PYTHON`` points; with neither, the caller's interpreter, and the results say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RUNTIME_VENV = Path(__file__).resolve().parent / ".venv-runtime"


def product_python() -> str:
    chosen = os.environ.get("BENCH_PRODUCT_PYTHON")
    if chosen:
        return chosen
    runtime = RUNTIME_VENV / "bin" / "python"
    return str(runtime) if runtime.exists() else sys.executable


def has_pandas(python: str) -> bool:
    """Whether `python` can import pandas (then pyarrow imports it too, see above)."""
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('pandas') else 1)"
    return subprocess.run([python, "-c", probe], check=False).returncode == 0
