"""The trailer below a table: only records that cannot be data are dropped, each with its reason.

A real row must never be dropped because it looks like a total (``sum,3`` and ``count,2`` in a
metric table are data), so a record at the end is trailer only when it is unmistakable:

* an empty row (only delimiters, or ``""``): what spreadsheets write for formatted, empty rows;
* a marker of another width: fewer fields than the table, starting with a trailer word and
  only numbers after it (``Total,123`` in a five-column table, ``EOF``, ``Record count: 500``,
  ``TRAILER,4``), a lone count (``500``, ``#500``) or a ``#`` comment; in a one-column table
  only end markers (``EOF``, ``END``, ``end of file``);
* a totals row of the table's own width (``Total,,,1675.75,335.15``, ``Summe;;1.719,95;EUR``,
  ``Totaal``) whose every number equals the sum of its column above (other cells may only
  repeat a constant column, like the currency); only checkable when the whole file is in the
  sample, so in a larger file such a row stays data;
* a note: one filled cell holding a sentence (``Source: ONS``, a copyright line), separated
  from the table by a blank or empty line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from backend.detection.cells import filled, is_empty, shown, title_like
from backend.detection.dialect import SampleRecord
from backend.models import SkippedLine

#: Records looked at from the end (empty rows included).
MAX_TRAILER_ROWS = 50

_TRAILER_WORD = re.compile(
    r"[#*=\s-]*(?:grand\s+)?(?:total|totals|sum|subtotal|eof|end|end\s+of\s+(?:file|data|report)|trailer|footer"
    r"|record\s*count|records|row\s*count|rows|count|number\s+of\s+(?:records|rows|lines))"
    r"(?:\s+(?:rows|records|lines|count|amount))?\s*[:=]?\s*[#]?\s*[-+]?[0-9.,]*\s*[#*=-]*",
    re.IGNORECASE,
)
_END_MARKER = re.compile(
    r"[#*=\s-]*(?:eof|end|end\s+of\s+(?:file|data|report)|trailer)\s*[#*=-]*", re.IGNORECASE
)
_TOTAL_LABEL = re.compile(
    r"\s*(?:grand\s+)?(?:total|totals|sum|summe|gesamt|gesamtsumme|insgesamt|totaal|totale|somme"
    r"|total\s+g[ée]n[ée]ral)\s*:?\s*",
    re.IGNORECASE,
)
_COUNT = re.compile(r"[#*]?\s*[0-9]+")
_NUMBERISH = re.compile(r"[-+]?[$€£]?[0-9][0-9.,' ]*%?")
_AMOUNT = re.compile(r"[-+]?[$€£¥]?\s?[0-9][0-9.,' \u00a0]*-?")
_DECIMAL_COMMA = re.compile(r",[0-9]{1,2}-?$|\.[0-9]{3},")


def is_marker(values: Sequence[str], width: int) -> bool:
    """A trailer record that cannot be a row: another width and a trailer word or count."""
    cells = [v.strip() for v in values]
    nonempty = [c for c in cells if c]
    if not nonempty or len(values) > max(width, 1):
        return False
    first = nonempty[0]
    if width <= 1:
        return bool(_END_MARKER.fullmatch(first))
    if len(values) >= width:
        return False
    if _TRAILER_WORD.fullmatch(first):
        return all(_NUMBERISH.fullmatch(c) for c in nonempty[1:])
    if first.startswith("#") and len(nonempty) == 1:
        return True  # a comment line, as the tools that write '#' preambles also end with one
    return len(nonempty) == 1 and bool(_COUNT.fullmatch(first))


def _number(text: str, decimal_comma: bool) -> Decimal | None:
    value = text.strip()
    if not _AMOUNT.fullmatch(value):
        return None
    negative = value.startswith("-") or value.endswith("-")
    digits = re.sub(r"[^0-9.,]", "", value)
    # 1.719,95 (German) or 1,719.95: the column's convention says which mark is decimal.
    digits = digits.replace(".", "").replace(",", ".") if decimal_comma else digits.replace(",", "")
    try:
        number = Decimal(digits)
    except InvalidOperation:
        return None
    return -number if negative else number


def is_totals_row(records: Sequence[SampleRecord], index: int, width: int) -> bool:
    """Record `index` is a ``Total`` row whose numbers are the sums of the rows above it."""
    values = records[index].values
    cells = [(j, v.strip()) for j, v in enumerate(values) if v.strip()]
    if len(cells) < 2 or len(values) > width or not _TOTAL_LABEL.fullmatch(cells[0][1]):
        return False
    above = [r.values for r in records[:index] if not is_empty(r.values)]
    if not above:
        return False
    numbers_checked = 0
    for j, text in cells[1:]:
        column = [r[j].strip() for r in above if j < len(r) and r[j].strip()]
        if column and all(v == text for v in column) and len(column) == len(above):
            continue  # a constant column repeated in the totals row (the currency, the unit)
        numbers_checked += 1
        decimal_comma = sum(1 for v in column if _DECIMAL_COMMA.search(v)) * 2 > len(column)
        total = _number(text, decimal_comma)
        numbers = [_number(v, decimal_comma) for v in column]
        if total is None or not column or any(n is None for n in numbers):
            return False
        exponent = total.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        tolerance = Decimal(1).scaleb(-places) / 2
        if abs(sum(n for n in numbers if n is not None) - total) > tolerance:
            return False
    return numbers_checked > 0


def _note(values: Sequence[str], width: int) -> bool:
    return width >= 2 and filled(values) == 1 and title_like(values)


def find_trailer(
    records: Sequence[SampleRecord], width: int, *, delimiter: str, whole: bool, lines_known: bool = True
) -> tuple[SkippedLine, ...]:
    """The trailer among the last `records` (non-blank, in file order), first record first.

    Args:
        records: the table's last records (all of them after the header when `whole`).
        width: the table's width.
        delimiter: for the text shown with each trailer record.
        whole: `records` are every data row of the file, so totals can be checked.
        lines_known: the records' line numbers are the file's (else reported as 0).
    """
    kinds: list[tuple[int, str, str]] = []  # (index, kind, reason), last record first
    for i in range(len(records) - 1, max(-1, len(records) - 1 - MAX_TRAILER_ROWS), -1):
        values = records[i].values
        if is_empty(values):
            kinds.append((i, "empty", "empty row"))
        elif is_marker(values, width):
            kinds.append((i, "marker", f"trailer record ({len(values)} of {width} fields)"))
        elif whole and width >= 2 and is_totals_row(records, i, width):
            kinds.append((i, "total", "totals row: its numbers are the sums of the columns above"))
        elif _note(values, width):
            kinds.append((i, "note", "note below the table (one filled cell)"))
        else:
            break
    kinds.reverse()
    # A note is only a note when a blank or empty line stands between the table and it.
    start = 0
    separated = False
    for position, (i, kind, _) in enumerate(kinds):
        gap = i > 0 and records[i].line > records[i - 1].end + 1
        separated = separated or gap
        if kind == "note" and not separated:
            start = position + 1
            separated = False
        elif kind == "empty":
            separated = True
    out = []
    for i, _, reason in kinds[start:]:
        record = records[i]
        line, end = (record.line, record.end) if lines_known else (0, 0)
        out.append(SkippedLine(line, end, reason, shown(record.values, delimiter)))
    return tuple(out)
