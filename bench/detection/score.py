"""Comparing what a reader returned with the clean truth.

* Both sides go through the loader's ragged-rows ``repair`` rule first (short rows padded with
  empty cells, surplus fields joined back into the last column with the delimiter): the
  benchmark loads with ``--ragged-rows repair``, and a baseline's rows are repaired to its own
  header width the same way, so ragged-row files compare like for like.
* Exact: the header (when the truth has one; else "no header") and every data row, in order.
* Cell F1: cells are a multiset of (column, value) pairs (header cells tagged apart), so one
  misplaced row costs only its own cells; precision over the cells returned, recall over the
  truth's cells.
* A file the truth says must be refused (``Case.refused``) is exact, with F1 1.0, only when
  the reader refused it with a reason containing that text; any table returned scores 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bench.detection.systems import Prediction
from tests.detection.corpus import Case


@dataclass(frozen=True)
class Score:
    exact: bool
    f1: float
    error: str | None = None


def repair(rows: Sequence[Sequence[str]], width: int, delimiter: str) -> list[list[str]]:
    """The loader's RAGGED_ROWS=repair rule."""
    out = []
    for row in rows:
        values = list(row)
        if width and len(values) < width:
            values += [""] * (width - len(values))
        elif width and len(values) > width:
            values = [*values[: width - 1], delimiter.join(values[width - 1 :])]
        out.append(values)
    return out


def _width(prediction: Prediction) -> int:
    if prediction.header is not None:
        return len(prediction.header)
    widths = Counter(len(r) for r in prediction.rows)
    return widths.most_common(1)[0][0] if widths else 0


def _cells(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> Counter[tuple[object, ...]]:
    cells: Counter[tuple[object, ...]] = Counter()
    if header is not None:
        cells.update(("header", j, v) for j, v in enumerate(header))
    for row in rows:
        cells.update((j, v) for j, v in enumerate(row))
    return cells


def score_refusal(case: Case, reason: str) -> Score:
    """The score of a reader that refused the file (raised) with `reason`."""
    if case.refused is not None and case.refused in reason:
        return Score(True, 1.0)
    return Score(False, 0.0, reason[:200])


def score(case: Case, prediction: Prediction) -> Score:
    """Exactness and cell F1 of one prediction."""
    if case.refused is not None:
        return Score(False, 0.0, f"read a file that must be refused ({case.refused})")
    delimiter = case.expect.get("delimiter") or ","
    truth_rows = repair(case.rows, case.width, delimiter)
    rows = repair(prediction.rows, _width(prediction), prediction.delimiter)
    header = prediction.header
    if case.headers is None and header is not None and all(h.startswith("column_") for h in header):
        header = None
    exact = rows == truth_rows and header == case.headers
    truth = _cells(case.headers, truth_rows)
    got = _cells(header, rows)
    hits = sum((truth & got).values())
    total_truth, total_got = sum(truth.values()), sum(got.values())
    if total_truth == 0 and total_got == 0:
        return Score(exact, 1.0)
    precision = hits / total_got if total_got else 0.0
    recall = hits / total_truth if total_truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(exact, f1)
