"""The Arrow reader reads every corpus file exactly like the Python reader, or refuses it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from backend.errors import ArrowRefusedError, IngestError
from backend.load.arrow_csv import eligible, iter_arrow_runs
from backend.load.csv_python import Run, iter_runs
from bench.detection.generate import build as generated_cases
from tests.support import make_settings

ROOT = Path(__file__).resolve().parents[2]
CORPORA = [ROOT / "bench" / "detection" / "realworld", ROOT / "examples", ROOT / "tests"]
SUFFIXES = {".csv", ".tsv", ".txt", ".dat", ".psv", ".tab"}
FILES = sorted(p for d in CORPORA for p in d.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
GENERATED = Path(tempfile.mkdtemp(prefix="arrow-eq-"))
for _case in generated_cases():
    _file = GENERATED / (_case.name.replace("/", "__") + ".csv")
    _file.write_bytes(_case.data)
    FILES.append(_file)
#: Batches this small make runs cross Arrow's blocks and the files' ends.
SIZE = 3


def _python(path: Path, detection, width: int) -> tuple[list[tuple[int, list[str]]], bool] | str:
    """(numbered rows, whether every row had the header's width), or the error it raised."""
    rows: list[tuple[int, list[str]]] = []
    even = True
    try:
        with path.open("rb") as raw:
            for item in iter_runs(raw, detection, width=width, size=SIZE):
                if isinstance(item, Run):
                    rows.extend(enumerate(item.rows, item.first))
                else:
                    even = False
                    rows.append((item.number, item.values))
    except IngestError as exc:
        return str(exc)
    return rows, even


def _arrow(path: Path, detection, width: int) -> list[tuple[int, list[str]]]:
    rows: list[tuple[int, list[str]]] = []
    with path.open("rb") as raw:
        for run in iter_arrow_runs(raw, detection, width=width, size=SIZE):
            assert run.num_rows <= SIZE
            cells = [c.to_pylist() for c in run.columns]
            rows.extend(enumerate((list(r) for r in zip(*cells, strict=True)), run.first))
    return rows


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory):
    return make_settings(tmp_path_factory.mktemp("eq"), "sqlite://")


def test_the_corpora_are_there() -> None:
    assert len(FILES) > 300


@pytest.mark.parametrize(
    "path", FILES, ids=[p.name if p.is_relative_to(GENERATED) else str(p.relative_to(ROOT)) for p in FILES]
)
def test_same_rows_or_refused(path: Path, settings, request: pytest.FixtureRequest) -> None:
    from backend.detection import detect

    try:
        detection = detect(path, settings)
    except IngestError:
        pytest.skip("not detected")
    width = len(detection.headers)
    if eligible(detection) is not None:
        return
    python = _python(path, detection, width)
    try:
        arrow = _arrow(path, detection, width)
    except ArrowRefusedError:
        # Refusing is always safe (the load goes on in Python) but must not be the usual answer.
        request.config.stash.setdefault(_REFUSED, []).append(path)
        assert isinstance(python, str) or not python[1] or python[0] == [], "Arrow refused a plain file"
        return
    assert not isinstance(python, str), f"Python refused ({python}), Arrow read it"
    rows, even = python
    assert even, "a ragged row read by Arrow"
    assert arrow == rows


_REFUSED = pytest.StashKey[list]()


def test_arrow_reads_most_files(settings) -> None:
    """A reader that refused everything would pass the test above: most files must be read."""
    from backend.detection import detect

    read = 0
    for path in FILES:
        try:
            detection = detect(path, settings)
        except IngestError:
            continue
        if eligible(detection) is None:
            try:
                _arrow(path, detection, len(detection.headers))
                read += 1
            except ArrowRefusedError:
                pass
    assert read >= 350
