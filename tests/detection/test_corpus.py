"""Every pollution of the clean tables is detected and read back cell for cell."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import Settings
from backend.detection import detect
from backend.load.csv_python import Run, iter_records, iter_runs

from . import corpus as C

TABLES = [f() for f in C.CLEAN_TABLES]


def _cases() -> list[C.Case]:
    cases: list[C.Case] = []
    cases += C.encoding_cases()
    cases += C.delimiter_cases(TABLES)
    cases += C.quoting_cases(TABLES)
    cases += C.stray_quote_cases(C.people(6))
    cases += C.stray_quote_cases(C.plain(5), rows=[0, 2, 4])
    cases += C.line_ending_cases(TABLES)
    cases += C.structure_cases(TABLES)
    cases += C.ragged_cases(C.people(6))
    cases += C.ragged_cases(C.codes(6), rows=[0, 5])
    cases.append(C.write(C.years(), C.Style(), name="years/header/numeric", category="header"))
    return cases


def _param(case: C.Case) -> object:
    return pytest.param(case, id=case.name)


CASES = [_param(c) for c in _cases()]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


class TestPollutedTables:
    @pytest.mark.parametrize("case", CASES)
    def test_detects_and_reads_back_clean_cells(
        self, case: C.Case, settings: Settings, tmp_path: Path
    ) -> None:
        """detect() reports the pollution's dialect and layout and iter_records() returns the clean cells."""
        path = tmp_path / "file.csv"
        path.write_bytes(case.data)
        detection = detect(path, settings)
        for field, wanted in case.expect.items():
            got = getattr(detection, field)
            if field == "delimiter" and wanted is None:
                continue  # single column: any delimiter absent from the file will do
            if isinstance(wanted, tuple):
                assert got in wanted, f"{field}: {got!r} not in {wanted!r}"
            else:
                assert got == wanted, f"{field}: {got!r} != {wanted!r}"
        if case.headers is not None:
            assert detection.headers == case.headers
        assert [r.values for r in iter_records(path, detection)] == case.table_rows

    @pytest.mark.parametrize("case", CASES)
    @pytest.mark.parametrize("size", [1, 3, 1000])
    def test_runs_for_staging_hold_the_same_records_as_rows(
        self, case: C.Case, size: int, settings: Settings, tmp_path: Path
    ) -> None:
        """iter_runs() (the staging path) yields the same numbers, lines and values as iter_records()."""
        path = tmp_path / "file.csv"
        path.write_bytes(case.data)
        detection = detect(path, settings)
        width = len(detection.headers) if detection.headers else max(len(r) for r in case.table_rows)
        records = [(r.number, r.values) for r in iter_records(path, detection)]
        lines = {r.number: r.line for r in iter_records(path, detection)}
        flattened: list[tuple[int, list[str]]] = []
        for item in iter_runs(path, detection, width=width, size=size):
            if isinstance(item, Run):
                assert 0 < len(item.rows) <= size and all(len(v) == width for v in item.rows)
                flattened += [(item.first + i, values) for i, values in enumerate(item.rows)]
            else:
                assert len(item.values) != width and item.line == lines[item.number]
                flattened.append((item.number, item.values))
        assert flattened == records
