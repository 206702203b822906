"""How many of the table's first records are its header, and the column names they give.

A row is judged against the column types of the rows below it (the body):

* In a numeric, date or boolean column, a cell that fits the type votes "data", a cell with
  letters that does not fit votes "header"; empty cells, NA markers (``NA``, ``N/A``, ``-``...)
  and other letter-less misfits abstain. Numbers here are coarse (``020`` and ``1,5`` count).
* Numeric-looking headers: a row whose numeric cells are all four-digit years (1900-2100,
  at least two, all distinct) above columns whose data are not all years is a header
  (``Country,2019,2020`` over population counts).
* The first row is a header when header votes outnumber data votes. Without typed evidence
  (every column text, or the typed cells empty) it is a header unless its values look like
  data: a value that occurs again further down its column, or a value as long as every value
  of a fixed-length column (codes); a word above digit-bearing codes, or a length that differs
  from a fixed-length column, counts for the header. Files usually have a header, so a tie
  keeps it.
* Rows two and three join the header only with header votes and no data vote at all (group
  rows like ``Sales,,Costs,`` or unit rows like ``(EUR)``); an all-text table therefore never
  gets a multi-row header.
* A file with a single record: a header unless one of its cells is a number or a date.

Multi-row headers are joined per column with one space between the non-blank parts (no
forward filling of group labels); blank and duplicate names stay as written, naming dedupes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from backend.detection.types import value_kind
from backend.models import ColumnKind

MAX_HEADER_ROWS = 3
#: Body rows that decide column classes (the sample may hold many thousands).
BODY_ROWS = 500
_NA = frozenset({"na", "n/a", "n.a.", "null", "none", "nan", "-", "--", "?", "#n/a", "nil"})
_YEAR = re.compile(r"(?:19|20)[0-9]{2}|2100")
_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[^\W\d_]")
_NUMERIC = re.compile(r"[-+]?[0-9]+(?:[.,][0-9]+)?")

_NUMBER = "number"
_DATE = "date"
_BOOLEAN = "boolean"
_TEXT = "text"


def _class(text: str) -> str | None:
    """Coarse kind of one cell, None for empty/NA."""
    value = text.strip()
    if not value or value.lower() in _NA:
        return None
    if _NUMERIC.fullmatch(value):
        return _NUMBER  # coarser than the type rules: "020" or "1,5" are numbers here
    kind = value_kind(value)
    if kind in (ColumnKind.INTEGER, ColumnKind.DECIMAL):
        return _NUMBER
    if kind in (ColumnKind.DATE, ColumnKind.DATETIME):
        return _DATE
    if kind is ColumnKind.BOOLEAN:
        return _BOOLEAN
    return _TEXT


def _column_classes(rows: Sequence[Sequence[str]], width: int) -> list[str | None]:
    """The class that at least 80% of each column's non-empty body cells share (else text)."""
    out: list[str | None] = []
    for j in range(width):
        classes = [c for c in (_class(r[j]) for r in rows if j < len(r)) if c is not None]
        if not classes:
            out.append(None)
            continue
        top = max(set(classes), key=classes.count)
        out.append(top if classes.count(top) >= 0.8 * len(classes) else _TEXT)
    return out


def _votes(
    row: Sequence[str], classes: Sequence[str | None], body: Sequence[Sequence[str]]
) -> tuple[int, int]:
    """(header votes, data votes) of one row from the typed columns."""
    header = data = 0
    year_columns: list[int] = []
    for j, cell in enumerate(row[: len(classes)]):
        expected = classes[j]
        if expected is None or expected == _TEXT:
            continue
        got = _class(cell)
        if got is None:
            continue
        if got == expected:
            data += 1
            if expected == _NUMBER and _YEAR.fullmatch(cell.strip()):
                year_columns.append(j)
        elif _LETTER.search(cell):
            header += 1  # a word where the data has numbers, dates or booleans
    numeric_cells = [
        row[j].strip() for j in range(min(len(row), len(classes))) if classes[j] == _NUMBER and _class(row[j])
    ]
    if (
        len(year_columns) >= 2
        and len(year_columns) == len(numeric_cells)
        and len(set(numeric_cells)) == len(numeric_cells)
        and all(_has_non_year(body, j) for j in year_columns)
    ):
        header += len(year_columns)
        data -= len(year_columns)
    return header, data


def _has_non_year(body: Sequence[Sequence[str]], j: int) -> bool:
    return any(j < len(r) and r[j].strip() and not _YEAR.fullmatch(r[j].strip()) for r in body)


def _text_evidence(row: Sequence[str], classes: Sequence[str | None], body: Sequence[Sequence[str]]) -> int:
    """Positive: the first row looks like names; negative: it looks like one more data row."""
    score = 0
    for j, cell in enumerate(row[: len(classes)]):
        if classes[j] not in (_TEXT, None):
            continue
        value = cell.strip()
        column = [r[j].strip() for r in body if j < len(r) and r[j].strip()]
        if not value or not column:
            continue
        if value in column:
            score -= 2  # names are not repeated below; data values often are
            continue
        digits = sum(1 for v in column if _DIGIT.search(v))
        if digits >= 0.8 * len(column) and not _DIGIT.search(value):
            score += 1  # codes below ("AB12"), a word above
        lengths = {len(v) for v in column}
        if len(column) >= 3 and len(lengths) == 1:
            score += 1 if len(value) not in lengths else -1
    return score


def count_header_rows(rows: Sequence[Sequence[str]], width: int) -> int:
    """How many of `rows` (the table's non-blank records, preamble and trailer removed) are header."""
    if not rows:
        return 0
    if len(rows) == 1:
        typed = any(_class(cell) in (_NUMBER, _DATE) for cell in rows[0])
        return 0 if typed else 1
    body_start = MAX_HEADER_ROWS if len(rows) >= MAX_HEADER_ROWS + 3 else 1
    body = rows[body_start : body_start + BODY_ROWS]
    classes = _column_classes(body, width)

    header, data = _votes(rows[0], classes, body)
    # Without typed evidence, the text heuristics decide (a tie keeps the header).
    first_is_header = header > data if header or data else _text_evidence(rows[0], classes, body) >= 0
    if not first_is_header:
        return 0
    count = 1
    while count < min(MAX_HEADER_ROWS, len(rows) - 1):
        header, data = _votes(rows[count], classes, body)
        if header == 0 or data > 0:
            break
        count += 1
    return count


def header_names(rows: Sequence[Sequence[str]], width: int) -> tuple[str, ...]:
    """Column names from the header rows (``column_1``.. when there are none)."""
    if not rows:
        return tuple(f"column_{i}" for i in range(1, width + 1))
    if len(rows) == 1:
        return tuple(rows[0])
    size = max(len(r) for r in rows)
    names = []
    for j in range(size):
        parts = [r[j].strip() for r in rows if j < len(r) and r[j].strip()]
        names.append(" ".join(parts))
    return tuple(names)
