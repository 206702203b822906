"""Where the table starts: the preamble above it (titles, metadata, blank lines, a ``sep=`` hint).

A first line ``sep=;`` is Excel's delimiter hint: it names the delimiter and is skipped.

Exports pad every line to the table's width (``Title,,,,,,,``), so a width alone says little;
each leading record within the first 50 lines is judged by what its cells hold, against the
table's width W. A record is preamble when it is

* blank, or only delimiters (``,,,,,,,``);
* narrower: at most W - 2 fields, or fewer than W fields of which at most one is filled
  (``Sales report``, ``Date,2024-01-31`` over a four-column table), unless it is plainly the
  header of narrower rows below it: a table of its own (stacked tables, see `blocks`);
* a title: one filled cell holding a sentence (long, several words, a line break inside
  quotes, or a ``:``), however many empty cells pad it; or any single filled cell in a table
  of three or more columns that would not join the header as a group label (a word above
  numbers: ``Group A,,`` over ``zip,...`` joins; ``Staff list,,`` over text does not);
* wider than the table (``Exported by SpectraView 3.2,Sample B-17 measured Tuesday, March 5``
  over ``nm,Abs``): instrument and tool metadata;
* sparse and above a blank line: fewer than half of W cells filled (``Published:,14 February
  2024,,,,``), or a single filled cell, with only preamble between it and a blank line.

The first three are certain. The last two are only taken when the record where the table then
starts is a header (the caller's check): a headerless file's first rows are never dropped
because they are sparse or long. A short label directly above the header (``Group A,,,``) is
not a title: it joins the header as a group row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from backend.detection.cells import content_width, filled, is_empty, shown, title_like
from backend.detection.dialect import SampleRecord
from backend.detection.header import is_strong_header, would_join
from backend.models import SkippedLine

MAX_PREAMBLE_LINES = 50
#: Excel's delimiter hint, the first line of a file written for Excel (``sep=;``).
_SEP_HINT = re.compile(r'"?sep=([^\r\n"])"?(?:\r\n|\n|\r)', re.IGNORECASE)


def delimiter_hint(text: str) -> str | None:
    """The delimiter an Excel ``sep=X`` first line names, if the text starts with one."""
    match = _SEP_HINT.match(text)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class Start:
    """The index of the table's first record and the preamble records above it, with reasons."""

    index: int
    skipped: tuple[SkippedLine, ...]


def _dense(record: SampleRecord, width: int) -> bool:
    """A record that could be a table row: about the table's width, half its cells filled."""
    n = len(record.values)
    return width - 1 <= n <= width + 1 and 2 * filled(record.values) >= width and not is_empty(record.values)


def _above_blank(records: Sequence[SampleRecord], i: int, width: int) -> bool:
    """A blank (or delimiter-only) line follows record `i` before the next table-like record."""
    for record in records[i + 1 :]:
        if is_empty(record.values):
            return True
        if _dense(record, width):
            return False
    return False


def _narrow_table(records: Sequence[SampleRecord], i: int) -> bool:
    """Record `i` is plainly the header of the narrower rows below it (three fields or more)."""
    n = len(records[i].values)
    if n < 3 or filled(records[i].values) < n:
        return False
    below = []
    for record in records[i + 1 : i + 21]:
        if len(record.values) != n:
            break
        below.append(record.values)
    return bool(below) and is_strong_header(records[i].values, below, n)


def _group_label(records: Sequence[SampleRecord], i: int, width: int) -> bool:
    """Record `i` would join the header below it as a group row (``Group A,,`` over numbers)."""
    body = [r.values for r in records[i + 2 : i + 2 + 50] if r.values]
    return would_join(records[i].values, body, width)


def _reason(records: Sequence[SampleRecord], i: int, width: int) -> tuple[str, bool] | None:
    """(why record `i` is preamble, whether that is certain), or None when it is a table row."""
    values = records[i].values
    n = len(values)
    cells = filled(values)
    if not values:
        return "blank line", True
    if cells == 0:
        return "only delimiters", True
    if width >= 2 and (n <= width - 2 or (n < width and cells <= 1)):
        if _narrow_table(records, i):
            return None  # a table of its own above the main one: stacked tables, not preamble
        return f"{n} field{'s' if n > 1 else ''}, the table has {width}", True
    if width >= 2 and title_like(values):
        return "title (one filled cell)", False
    if width >= 3 and cells == 1 and not _group_label(records, i, width):
        return "one filled cell above the table", False
    if width >= 2 and content_width(values) > width:
        return f"{n} fields, the table has {width} (metadata)", False
    if width >= 3 and (2 * cells < width or cells <= 1) and _above_blank(records, i, width):
        return f"{cells} of {width} cells filled, above a blank line", False
    return None


def find_table_start(
    records: Sequence[SampleRecord],
    width: int,
    *,
    delimiter: str,
    first: int = 0,
    is_header_at: Callable[[int], bool] | None = None,
) -> Start:
    """The table's first record (header or first data row) among `records`, from index `first`.

    Args:
        records: the sample's records, blank lines included.
        width: the table's width (the dialect's modal field count).
        delimiter: for the text shown with each skipped line.
        first: records before it are already accounted for (a ``sep=`` hint line).
        is_header_at: whether the table starting at a record index has a header; uncertain
            preamble is only skipped when it does (None: never skip uncertain preamble).
    """
    i = first
    skipped: list[SkippedLine] = []
    first_uncertain: int | None = None
    if width <= 1:
        while i < len(records) and not records[i].values:
            skipped.append(SkippedLine(records[i].line, records[i].end, "blank line"))
            i += 1
        return Start(i if i < len(records) else first, tuple(skipped))
    while i < len(records) and records[i].line <= MAX_PREAMBLE_LINES:
        found = _reason(records, i, width)
        if found is None:
            break
        reason, certain = found
        if not certain and first_uncertain is None:
            first_uncertain = len(skipped)
        record = records[i]
        skipped.append(SkippedLine(record.line, record.end, reason, shown(record.values, delimiter)))
        i += 1
    if i >= len(records) or records[i].line > MAX_PREAMBLE_LINES:
        # No table row in the first lines: the table starts at the first record that has one.
        i = next((k for k in range(first, len(records)) if not is_empty(records[k].values)), first)
        return Start(i, tuple(s for s in skipped if s.line < records[i].line) if records else ())
    if first_uncertain is not None and (is_header_at is None or not is_header_at(i)):
        # Without a header below, sparse or long first rows may be data: keep them.
        keep = skipped[first_uncertain]
        i = next(k for k in range(first, len(records)) if records[k].line == keep.line)
        skipped = skipped[:first_uncertain]
    return Start(i, tuple(skipped))
