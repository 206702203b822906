"""`pip install .` gives a working `refdata-monitor` command whose dependencies are the daemon's only."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(ROOT), "-w", str(out)],
        check=True,
        cwd=out,  # build output (build/, *.egg-info) must not land in the repository
        timeout=300,
    )
    (found,) = out.glob("refdata_monitor-*.whl")
    return found


def _metadata(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(f".dist-info/{name}")]
        return archive.read(member).decode()


def test_the_wheel_declares_the_console_command(wheel: Path) -> None:
    assert "refdata-monitor = backend.cli:main" in _metadata(wheel, "entry_points.txt")


def test_runtime_requirements_are_what_the_daemon_imports(wheel: Path) -> None:
    """Test and benchmark tools stay in requirements-dev.txt; pandas is not a runtime dependency."""
    required = {
        line.split(":", 1)[1].strip().split(";")[0].split("=")[0].split("[")[0].strip().lower()
        for line in _metadata(wheel, "METADATA").splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert {"sqlalchemy", "pyarrow", "structlog"} <= required
    assert not required & {"pandas", "pytest", "mypy", "ruff", "hypothesis", "py-spy", "selenium"}


def test_the_installed_command_runs_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    """Installed without the repository on the path, `refdata-monitor --help` works from any folder
    and creates no data/ or dropoff/ folder there."""
    prefix = tmp_path / "prefix"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--prefix", str(prefix), str(wheel)],
        check=True,
        timeout=300,
    )
    (site,) = prefix.glob("lib/python*/site-packages")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)  # the venv still provides the dependencies
    done = subprocess.run(
        [str(prefix / "bin" / "refdata-monitor"), "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "refdata-monitor" in done.stdout and "exit codes" in done.stdout.lower()
    assert (
        str(site)
        in subprocess.run(
            [sys.executable, "-c", "import backend; print(backend.__file__)"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert list(elsewhere.iterdir()) == []
