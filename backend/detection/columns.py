"""How many columns the table has when the header and the rows disagree about the width.

* Trailing delimiters: the rows have k fields more than the header (``"t","x","y"`` over
  ``0.5,12.25,3.75,``), or every line, header included, ends with a delimiter; the surplus
  fields are empty on every row. They are no column: the table is k narrower and the reader
  drops those empty fields (a row whose surplus holds a value keeps it, never glued into a
  neighbour: the ragged-rows policy decides).
* Unnamed columns: most rows have k fields more than the header and the surplus holds values
  (a header that lost a delimiter, or lacks the last names). The values are columns: the
  header gets k empty names (``column_N`` once normalised). When only some rows are longer,
  they are ragged rows: nothing changes and the ragged-rows policy decides; so is a single
  long row below a header (``a,b`` over ``1,2,3``).
* A header wider than the rows whose extra cells are empty (``a,b,c,`` over ``1,2,3``): the
  empty cells are no names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: Rows that must carry surplus values before they are read as unnamed columns.
_MIN_UNNAMED_ROWS = 2


@dataclass(frozen=True, slots=True)
class Fit:
    """The table's width and how the header and rows map onto it."""

    width: int
    dropped: int = 0
    unnamed: int = 0

    def header(self, values: Sequence[str]) -> list[str]:
        """The header row cut or padded (with empty names) to the table's width."""
        cells = list(values[: self.width])
        return cells + [""] * (self.width - len(cells))

    def row(self, values: list[str]) -> list[str]:
        """A data row as the reader yields it (trailing empty surplus fields dropped)."""
        if self.dropped and len(values) == self.width + self.dropped and not any(values[self.width :]):
            return values[: self.width]
        return values


def _modal(rows: Sequence[Sequence[str]]) -> int:
    counts = Counter(len(r) for r in rows)
    return max(counts.items(), key=lambda item: (item[1], item[0]))[0] if counts else 0


def _empty_tail(rows: Sequence[Sequence[str]], width: int) -> int:
    """How many last fields are empty ("") in every row of `width` fields (0 if none has it)."""
    full = [r for r in rows if len(r) == width]
    if not full:
        return 0
    k = 0
    while k < width - 1 and all(r[width - 1 - k] == "" for r in full):
        k += 1
    return k


def fit_with_header(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Fit:
    """The fit when `header` is the header row and `rows` (not blank) are the data."""
    named = len(header)
    while named > 0 and not header[named - 1].strip():
        named -= 1
    if not rows:
        return Fit(named, dropped=len(header) - named) if named else Fit(len(header))
    width = _modal(rows)
    empty = _empty_tail(rows, width)
    if len(header) < width:
        if 2 * sum(1 for r in rows if len(r) == width) <= len(rows):
            # Not most rows: a few long rows are ragged rows, the ragged-rows policy decides.
            return Fit(len(header))
        surplus = width - len(header)
        if empty >= surplus:
            return Fit(len(header), dropped=surplus)
        if sum(1 for r in rows if len(r) == width) < _MIN_UNNAMED_ROWS:
            return Fit(len(header))  # one long row says nothing about the header: a ragged row
        return Fit(width, unnamed=surplus)
    if len(header) == width:
        # Every line ends with a delimiter: an empty last cell in the header and all rows.
        k = min(empty, len(header) - named)
        return Fit(width - k, dropped=k) if k else Fit(width)
    # A header wider than the rows: its surplus empty cells are no names.
    return Fit(max(width, named))


def fit_without_header(rows: Sequence[Sequence[str]]) -> Fit:
    """The fit of a headerless table: trailing fields empty in every full row are delimiters."""
    width = _modal(rows)
    k = _empty_tail(rows, width)
    return Fit(width - k, dropped=k) if k else Fit(width)
