"""How many of the table's first records are its header, and the column names they give.

A row is judged against the column types of the rows below it (the body):

* In a numeric, date or boolean column, a cell that fits the type votes "data", a cell with
  letters that does not fit votes "header"; empty cells, NA markers (``NA``, ``N/A``, ``-``...)
  and other letter-less misfits abstain. Numbers here are coarse (``020`` and ``1,5`` count).
* Numeric-looking headers: a row whose numeric cells are all four-digit years (1900-2100,
  all distinct) above columns whose data are not all years is a header (``Country,2019,2020``
  over population counts); a single year counts only when no other cell of the row fits the
  data and most values below it are not years (``country,2023``). Consecutive whole numbers
  above fractions are item numbers (``id,1,2,3`` over ``0.12,0.53,0.97``).
* The first row is a header when header votes outnumber data votes. Without typed evidence
  (every column text, or the typed cells empty) it is a header unless its values look like
  data: a value that occurs again further down its column, or a code of exactly the form of a
  fixed-length column's codes (``k1`` over ``k2``, ``k3``). A word above digit-bearing codes,
  or a length that differs from a fixed-length column, counts for the header; a word of the
  codes' length counts for nothing (``ISO`` over ``DEU``, ``st`` over ``CA`` are headers). Files usually have
  a header, so a tie keeps it (a headerless all-text file needs ``header=False``).
* Rows two and three join the header only with header votes and no data vote at all (group
  rows like ``Sales,,Costs,`` or unit rows like ``(EUR)``); an all-text table therefore never
  gets a multi-row header.
* A file with a single record: a header unless one of its cells is a number or a date.

Multi-row headers are joined per column with one space between the non-blank parts (no
forward filling of group labels); blank and duplicate names stay as written, naming dedupes.
"""

from __future__ import annotations

import itertools
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
_FRACTION = re.compile(r"[.,][0-9]")

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
    numeric = [j for j in range(min(len(row), len(classes))) if classes[j] == _NUMBER and _class(row[j])]
    cells = [row[j].strip() for j in numeric]
    if year_columns and len(year_columns) == len(numeric) and len(set(cells)) == len(cells):
        # Years over counts (``Country,2019,2020``): names, though they are numbers. One year
        # alone (``country,2023``) only when nothing else in the row fits the data.
        if len(year_columns) >= 2 and all(_has_non_year(body, j) for j in year_columns):
            header += len(year_columns)
            data -= len(year_columns)
        elif data == 1 and _mostly_non_year(body, year_columns[0]):
            header, data = header + 1, 0
    elif len(numeric) >= 2 and _numbered(cells) and all(_all_fractions(body, j) for j in numeric):
        # Numbered columns (``id,1,2,3``) over fractions: item numbers, not values.
        header += len(numeric)
        data -= len(numeric)
    return header, data


def _numbered(cells: Sequence[str]) -> bool:
    """Consecutive whole numbers in column order (``1,2,3``)."""
    if not all(c.isdigit() for c in cells):
        return False
    numbers = [int(c) for c in cells]
    return all(b == a + 1 for a, b in itertools.pairwise(numbers))


def _all_fractions(body: Sequence[Sequence[str]], j: int) -> bool:
    values = [r[j].strip() for r in body if j < len(r) and r[j].strip()]
    return bool(values) and all(_FRACTION.search(v) for v in values)


def _mostly_non_year(body: Sequence[Sequence[str]], j: int) -> bool:
    values = [r[j].strip() for r in body if j < len(r) and r[j].strip()]
    return bool(values) and sum(1 for v in values if not _YEAR.fullmatch(v)) >= 0.8 * len(values)


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
            if len(value) not in lengths:
                score += 1  # a name of another length above fixed-length codes
            elif _DIGIT.search(value) and {_shape(v) for v in column} == {_shape(value)}:
                score -= 1  # one more code of the column's form (``k1`` over ``k2``, ``k3``)
            # A word of the codes' length says nothing: ``ISO`` over ``DEU`` is a header.
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
    if header or data:
        first_is_header = header > data
    else:
        # A mostly empty first row (``A,,`` over ``B,1,2``) names nothing: a header names most
        # of its columns; otherwise it is data unless the text says it looks like data.
        named = sum(1 for cell in rows[0] if cell.strip())
        first_is_header = (
            2 * named >= min(width, len(rows[0])) and _text_evidence(rows[0], classes, body) >= 0
        )
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


def _shape(text: str) -> str:
    """Letters -> a/A, digits -> 9, runs collapsed: ``K-100`` -> ``A-9``, ``base`` -> ``a``."""
    out: list[str] = []
    for ch in text:
        mark = "9" if ch.isdigit() else ("A" if ch.isupper() else "a") if ch.isalpha() else ch
        if not out or out[-1] != mark:
            out.append(mark)
    return "".join(out)


def is_strong_header(
    row: Sequence[str], below: Sequence[Sequence[str]], width: int, *, min_votes: int = 1
) -> bool:
    """`row` is plainly a header of the rows `below` (used to tell where a second table starts).

    Every filled cell above a typed column is a word where the column has numbers, dates or
    booleans (at least `min_votes` such cells), and no text cell occurs in its column or is a code of
    the form most of its column's values share (``k5`` over ``k0``..``k4`` is a row, ``x`` over
    them a name).
    """
    if not below or not any(cell.strip() for cell in row):
        return False
    classes = _column_classes(below[:BODY_ROWS], width)
    header, data = _votes(row, classes, below)
    if header < min_votes or data > 0:
        return False
    for j, cell in enumerate(row[:width]):
        value = cell.strip()
        if not value or classes[j] not in (_TEXT, None):
            continue
        column = [r[j].strip() for r in below if j < len(r) and r[j].strip()]
        shapes = [_shape(v) for v in column]
        coded = _DIGIT.search(value) is not None  # words all look alike; codes have a form
        if value in column or (coded and shapes.count(_shape(value)) * 2 >= len(shapes)):
            return False
    return True


def would_join(row: Sequence[str], body: Sequence[Sequence[str]], width: int) -> bool:
    """`row` would join a header as a group row: words above typed columns, nothing that fits."""
    if not body:
        return False
    classes = _column_classes(body[:BODY_ROWS], width)
    header, data = _votes(row, classes, body)
    return header > 0 and data == 0
