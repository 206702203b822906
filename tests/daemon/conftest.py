"""Fixtures of the daemon tests: the daemon as a real subprocess on a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.support import Daemon


@pytest.fixture
def daemon(tmp_path: Path, db_url: str) -> Iterator[Daemon]:
    """A daemon (not started) on its own dropoff and database; stopped after the test."""
    d = Daemon(tmp_path, db_url)
    yield d
    if d.alive():
        d.terminate()
