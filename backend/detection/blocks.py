"""Several tables stacked in one file: where each starts, how wide it is, where its header is.

A new table starts below the first one at

* a row equal to the first table's header (a repeated header: a paginated report, or
  sections exported one after the other);
* a title line after a blank or empty line, directly above a header (``Region: South,,,``
  then ``Site,Visits,...``);
* a row of another width that is plainly the header of the rows of that width below it
  (``Store,Region,Manager,...`` over eight-field rows after a five-field summary), with or
  without a blank line before it;
* after a blank or empty line, a row of the same width that is plainly a header of the rows
  below it, with words over two typed columns at least (``x,y`` over numbers; one word over
  one number, ``banana,unknown``, may be a row with a missing value).

"Plainly a header" is `header.is_strong_header`: words above numbers or dates and no text cell
shaped like its column's values, so one odd data row never splits a table. A run of short rows
without such a header is not a table either: the ragged-rows policy handles those rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from backend.detection.cells import filled, is_empty, title_like
from backend.detection.dialect import SampleRecord
from backend.detection.header import is_strong_header
from backend.models import TableBlock

#: Rows below a candidate header that its strength is judged against.
_BELOW = 20


def _below(records: Sequence[SampleRecord], i: int) -> list[list[str]]:
    """The run of rows after record `i` of one width (within one of `i`'s), up to a blank line."""
    if i + 1 >= len(records):
        return []
    width = len(records[i + 1].values)
    if abs(width - len(records[i].values)) > 1:
        return []
    out: list[list[str]] = []
    for record in records[i + 1 : i + 1 + _BELOW]:
        if is_empty(record.values) or len(record.values) != width:
            break
        out.append(record.values)
    return out


def _starts_table(records: Sequence[SampleRecord], i: int, width: int, after_gap: bool) -> int | None:
    """Index of the new table's header when a new table starts at record `i`, else None."""
    values = records[i].values
    if after_gap and title_like(values):
        header = i + 1
        if header < len(records) and is_strong_header(
            records[header].values, _below(records, header), len(records[header].values)
        ):
            return header
    if filled(values) < 2 or (len(values) == width and not after_gap):
        return None  # the common case, decided without looking further
    below = _below(records, i)
    if not below:
        return None
    if len(values) != width and is_strong_header(values, below, len(values)):
        return i
    # Same width after a blank line: one word over one number (``banana,unknown``) may be a
    # row with a missing value; a header has words over two typed columns at least.
    if after_gap and is_strong_header(values, below, len(values), min_votes=2):
        return i
    return None


def _block(records: Sequence[SampleRecord], first: int, header: int | None, last: int) -> TableBlock:
    data = [r for r in records[(header + 1 if header is not None else first) : last + 1]]
    rows = [r for r in data if not is_empty(r.values)]
    widths = Counter(len(r.values) for r in rows)
    width = (
        widths.most_common(1)[0][0]
        if widths
        else len(records[header if header is not None else first].values)
    )
    return TableBlock(
        first_line=records[first].line,
        last_line=records[last].end,
        width=width,
        header_line=records[header].line if header is not None else None,
        rows=len(rows),
    )


def find_blocks(
    records: Sequence[SampleRecord], *, header_rows: int, width: int, complete: bool
) -> tuple[TableBlock, ...]:
    """The tables stacked in `records` (the table's records, header first, trailer left out).

    Returns an empty tuple when there is only one table.

    Args:
        records: non-blank records from the table's first record on.
        header_rows: the first table's header rows (0: no header).
        width: the first table's data width (fields per row as written).
        complete: the records reach the end of the file (else the last block may go on).
    """
    header_values = records[header_rows - 1].values if header_rows else None
    starts: list[tuple[int, int | None]] = [(0, header_rows - 1 if header_rows else None)]
    # The first table's width is that of the rows right below its header: the file-wide
    # modal width may be the second table's.
    first_rows = _below(records, header_rows - 1) if header_rows else []
    current = Counter(len(v) for v in first_rows).most_common(1)[0][0] if first_rows else width
    after_gap = False
    i = header_rows
    while i < len(records):
        record = records[i]
        values = record.values
        if not "".join(values).strip():  # blank or only delimiters (a C-speed is_empty)
            after_gap = True
            i += 1
            continue
        after_gap = after_gap or (i > 0 and record.line > records[i - 1].end + 1)
        if len(values) == current and not after_gap and values != header_values:
            i += 1  # the common case: one more row of the table
            continue
        header: int | None = None
        if header_values is not None and values == header_values:
            header = i
        else:
            header = _starts_table(records, i, current, after_gap)
        if header is not None:
            starts.append((i, header))
            below = _below(records, header)
            current = Counter(len(v) for v in below).most_common(1)[0][0] if below else len(values)
            i = header + 1
            after_gap = False
            continue
        after_gap = False
        i += 1
    if len(starts) < 2:
        return ()
    blocks = []
    for k, (first, header) in enumerate(starts):
        last = starts[k + 1][0] - 1 if k + 1 < len(starts) else len(records) - 1
        while last > first and is_empty(records[last].values):
            last -= 1
        blocks.append(_block(records, first, header, last))
    if not complete:
        end = blocks[-1]
        blocks[-1] = TableBlock(end.first_line, None, end.width, end.header_line, end.rows)
    return tuple(blocks)
