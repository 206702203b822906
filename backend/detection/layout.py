"""Where the table sits in the file: preamble above it, trailer below it, a second table inside.

* Preamble: the records before the first record as wide as the table, when each of them is
  clearly narrower (at most ``width - 2`` fields, or a single non-empty cell: title lines,
  ``Generated: ...``), within the first 50 lines. Blank lines count as preamble lines.
* Trailer: up to three last records whose first cell is a trailer word (``Total``, ``EOF``,
  ``Record count: 500``, ``Total rows``...) with only numbers after it, or a lone count
  (``500``, ``#500``) in a table of two or more columns. A last data row whose first cell
  merely starts with such a word (``Total Solutions Ltd``) is data.
* Second table: after a blank line, a run of at least two records of another width, or a
  record equal to the header: reported as a warning; the ragged-rows policy decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from backend.detection.dialect import SampleRecord

MAX_PREAMBLE_LINES = 50
MAX_TRAILER_ROWS = 3

_TRAILER_WORD = re.compile(
    r"[#*=\s-]*(?:grand\s+)?(?:total|totals|sum|subtotal|eof|end|end\s+of\s+(?:file|data|report)|trailer|footer"
    r"|record\s*count|records|row\s*count|rows|count|number\s+of\s+(?:records|rows|lines))"
    r"(?:\s+(?:rows|records|lines|count|amount))?\s*[:=]?\s*[#]?\s*[-+]?[0-9.,]*\s*[#*=-]*",
    re.IGNORECASE,
)
_COUNT = re.compile(r"[#*]?\s*[0-9]+")
_NUMBERISH = re.compile(r"[-+]?[$€£]?[0-9][0-9.,' ]*%?")


def table_start(records: Sequence[SampleRecord], width: int) -> int:
    """Index in `records` of the table's first record (header or first data row)."""
    first = next((i for i, r in enumerate(records) if not r.blank), 0)
    if width <= 1:
        return first
    for i, record in enumerate(records):
        if record.blank:
            continue
        if record.line > MAX_PREAMBLE_LINES:
            break
        if len(record.values) >= width:
            return i
        nonempty = sum(1 for v in record.values if v.strip())
        if not (len(record.values) <= width - 2 or nonempty <= 1):
            break
    return first


def is_trailer(values: Sequence[str], width: int) -> bool:
    """Whether one record looks like a trailer (see the module docstring)."""
    cells = [v.strip() for v in values]
    nonempty = [c for c in cells if c]
    if not nonempty or len(values) > max(width, 1):
        return False
    first = nonempty[0]
    if _TRAILER_WORD.fullmatch(first):
        return all(_NUMBERISH.fullmatch(c) for c in nonempty[1:])
    return width >= 2 and len(nonempty) == 1 and len(values) < width and bool(_COUNT.fullmatch(first))


def count_trailer_rows(last: Sequence[Sequence[str]], width: int) -> int:
    """How many of the last non-blank records (`last`, in file order) form a trailer."""
    count = 0
    for values in reversed(last[-MAX_TRAILER_ROWS:]):
        if not is_trailer(values, width):
            break
        count += 1
    return count


def second_table_line(
    records: Sequence[SampleRecord], width: int, header: Sequence[str] | None
) -> tuple[int, int] | None:
    """(line, width) where a second table seems to start among the body `records`, if any."""
    after_blank = False
    nonblank = [r for r in records if not r.blank]
    position = {id(r): i for i, r in enumerate(nonblank)}
    for record in records:
        if record.blank:
            after_blank = True
            continue
        if header and list(record.values) == list(header):
            return record.line, len(record.values)
        if after_blank and len(record.values) != width:
            i = position[id(record)]
            run = nonblank[i : i + 3]
            if len(run) >= 2 and len({len(r.values) for r in run}) == 1:
                return record.line, len(record.values)
        after_blank = False
    return None
