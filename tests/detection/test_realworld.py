"""Every file of the real-world corpus (bench/detection/realworld) reads as its hand-written truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import Settings
from backend.detection import detect
from backend.errors import IngestError
from backend.load.csv_python import iter_records
from bench.detection import realworld_cases

from . import corpus as C

CASES = [pytest.param(c, id=c.name) for c in realworld_cases.build()]
# The generated second-table files: two tables, each with its own header.
STACKED = [pytest.param(c, id=c.name) for c in C.edge_cases(C.people(6)) if c.refused]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def _check(case: C.Case, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / case.name.rsplit("/", 1)[-1]
    path.write_bytes(case.data)
    if case.refused is not None:
        with pytest.raises(IngestError) as info:
            detect(path, settings)
        assert case.refused in str(info.value)
        return
    detection = detect(path, settings)
    assert (detection.headers if detection.header_rows else None) == case.headers
    assert [r.values for r in iter_records(path, detection)] == case.table_rows


class TestRealWorldCorpus:
    def test_the_corpus_is_big_enough(self) -> None:
        """The corpus holds at least 60 files (issue 16)."""
        assert len(CASES) >= 60

    @pytest.mark.parametrize("case", CASES)
    def test_reads_the_expected_table_or_refuses(
        self, case: C.Case, settings: Settings, tmp_path: Path
    ) -> None:
        """detect()+iter_records() give the expected header and rows, or refuse with the expected reason."""
        _check(case, settings, tmp_path)

    @pytest.mark.parametrize("case", STACKED)
    def test_generated_second_table_is_refused(
        self, case: C.Case, settings: Settings, tmp_path: Path
    ) -> None:
        """A generated file with a second table below the first is refused as stacked tables."""
        _check(case, settings, tmp_path)
