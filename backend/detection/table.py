"""The table inside the sample's records: preamble, header, width, trailer and stacked tables.

Steps, each in its own module: where the table starts (`layout`), how many rows are header
(`header`) and how the header and rows agree on the width (`columns`), what trailer follows
it (`trailer`), and whether a second table follows the first (`blocks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from backend.detection.blocks import find_blocks
from backend.detection.columns import Fit, fit_with_header, fit_without_header
from backend.detection.dialect import DELIMITER_NAMES, SampleRecord
from backend.detection.header import BODY_ROWS, MAX_HEADER_ROWS, count_header_rows, header_names
from backend.detection.layout import find_table_start
from backend.detection.trailer import find_trailer
from backend.errors import DetectionError, EmptyFileError
from backend.models import SkippedLine, TableBlock

#: Below this share of rows with the table's width, the dialect is called inconclusive.
MIN_CONSISTENCY = 0.5
#: What `stacked_tables` may choose.
STACKED_CHOICES = ("first", "largest")
_JUDGED_ROWS = BODY_ROWS + MAX_HEADER_ROWS


@dataclass(frozen=True, slots=True)
class Options:
    """What the caller decides instead of the detector (see `detect`)."""

    header: bool | None = None
    trailer_detection: bool = True
    stacked_tables: str | None = None


@dataclass(slots=True)
class Shape:
    """Where the table is in the file and how it reads."""

    skip_rows: int
    skipped: tuple[SkippedLine, ...]
    header_rows: int
    headers: tuple[str, ...]
    fit: Fit
    data: list[list[str]]
    trailer: tuple[SkippedLine, ...] = ()
    blocks: tuple[TableBlock, ...] = ()
    block: int | None = None
    last_line: int | None = None
    blank_values: bool = False
    consistency: float = 1.0
    warnings: list[str] = field(default_factory=list)


def judge(rows: Sequence[list[str]], forced: bool | None) -> tuple[int, Fit]:
    """(header rows, width fit) of a table whose non-blank rows are `rows`."""
    if not rows or forced is False:
        return 0, fit_without_header(rows)
    fit = fit_with_header(rows[0], rows[1:])
    trimmed = [fit.header(rows[0]), *(fit.row(r) for r in rows[1:])]
    count = count_header_rows(trimmed, fit.width)
    if forced:
        count = max(count, 1)
    if count == 0:
        return 0, fit_without_header(rows)
    return count, fit


def analyse(
    records: Sequence[SampleRecord],
    width: int,
    *,
    delimiter: str,
    complete: bool,
    tail: Sequence[SampleRecord] | None,
    options: Options,
    first: int = 0,
    skipped: tuple[SkippedLine, ...] = (),
    nested: bool = False,
) -> Shape:
    """The table's shape from the sample's records (blank lines included).

    Args:
        records: parsed sample (a possibly cut last record already removed).
        width: the dialect's modal field count.
        delimiter: for the text of reported lines.
        complete: `records` are the whole file.
        tail: the last records of a file larger than the sample (None when `complete`).
        options: the caller's header / trailer / stacked-tables choices.
        first: records before this index are already skipped (a ``sep=`` hint), see `skipped`.
        nested: analysing one block of a stacked file (no further block search).

    Raises:
        EmptyFileError: no header and no rows.
        DetectionError: stacked tables without a choice, or an inconclusive dialect.
    """

    def header_at(i: int) -> bool:
        rows = [r.values for r in records[i:] if r.values][:_JUDGED_ROWS]
        return judge(rows, options.header)[0] > 0

    start = find_table_start(
        records,
        width,
        delimiter=delimiter,
        first=first,
        is_header_at=None if options.header is False else header_at,
    )
    skipped = skipped + start.skipped
    table, blank_values = _table_records(records[start.index :], width, complete)
    rows = [r.values for r in table]
    header_rows, fit = judge(rows, options.header)
    trailer: tuple[SkippedLine, ...] = ()
    if options.trailer_detection:
        raw = fit.width + fit.dropped
        if complete:
            trailer = find_trailer(table[header_rows:], raw, delimiter=delimiter, whole=True)
        elif tail:
            trailer = find_trailer(tail, raw, delimiter=delimiter, whole=False, lines_known=False)
    if trailer and complete:
        table = table[: len(table) - len(trailer)]
        header_rows, fit = judge([r.values for r in table], options.header)
    if not table:
        raise EmptyFileError("no header and no rows")

    blocks = (
        ()
        if nested
        else find_blocks(table, header_rows=header_rows, width=fit.width + fit.dropped, complete=complete)
    )
    if blocks:
        return _choose_block(
            records,
            width,
            blocks,
            delimiter=delimiter,
            complete=complete,
            tail=tail,
            options=options,
            first=first,
            skipped=skipped,
        )

    data_records = table[header_rows:]
    data = [fit.row(list(r.values)) for r in data_records]
    consistency = sum(1 for v in data if len(v) == fit.width) / len(data) if data else 1.0
    if fit.width >= 2 and consistency < MIN_CONSISTENCY:
        name = DELIMITER_NAMES.get(delimiter, delimiter)
        raise DetectionError(
            f"inconclusive dialect: with delimiter {name!r} "
            f"only {consistency:.0%} of {len(data)} sample rows have {fit.width} fields"
        )
    header_cells = [fit.header(r.values) for r in table[:header_rows]]
    headers = header_names(header_cells, fit.width)
    first_record = table[0]
    shape = Shape(
        skip_rows=first_record.line - 1,
        skipped=skipped,
        header_rows=header_rows,
        headers=headers,
        fit=fit,
        data=data,
        trailer=trailer,
        blank_values=blank_values,
        consistency=consistency,
    )
    shape.warnings.extend(_warnings(shape, records, complete))
    return shape


def _table_records(
    records: Sequence[SampleRecord], width: int, complete: bool
) -> tuple[list[SampleRecord], bool]:
    """The table's records: non-blank ones; in a one-column table blank lines too, as [""].

    Returns the records and whether the table is one column (blank lines are values then).
    """
    if width != 1:
        return [r for r in records if r.values], False
    out: list[SampleRecord] = []
    pending: list[SampleRecord] = []
    for record in records:
        if not record.values:
            if out:  # blank lines above the first record are no rows
                pending.append(record)
            continue
        out.extend(pending)
        pending = []
        out.append(record)
    if not complete:
        out.extend(pending)  # more rows follow in the file: these blank lines are rows
    return [SampleRecord(r.line, r.end, [""]) if not r.values else r for r in out], True


def _choose_block(
    records: Sequence[SampleRecord],
    width: int,
    blocks: tuple[TableBlock, ...],
    *,
    delimiter: str,
    complete: bool,
    tail: Sequence[SampleRecord] | None,
    options: Options,
    first: int,
    skipped: tuple[SkippedLine, ...],
) -> Shape:
    listed = "; ".join(b.describe() for b in blocks)
    if options.stacked_tables not in STACKED_CHOICES:
        raise DetectionError(
            f"stacked tables: {len(blocks)} tables in one file ({listed}); split the file, or set the "
            "table's policy stacked_tables: first or largest to load one of them",
            details={"blocks": [b.to_dict() for b in blocks]},
        )
    index = 0 if options.stacked_tables == "first" else max(range(len(blocks)), key=lambda k: blocks[k].rows)
    block = blocks[index]
    last = block.last_line
    inside = [r for r in records[first:] if r.line >= block.first_line and (last is None or r.end <= last)]
    shape = analyse(
        inside,
        block.width,
        delimiter=delimiter,
        complete=complete and last is None,
        tail=tail if last is None else None,
        options=options,
        skipped=skipped if index == 0 else (),
        nested=True,
    )
    shape.blocks, shape.block, shape.last_line = blocks, index, last
    if index and shape.skip_rows < block.first_line - 1:
        shape.skip_rows = block.first_line - 1
    shape.warnings.append(
        f"stacked tables ({listed}): table {index + 1} ({block.describe()}) is read, "
        f"as stacked_tables: {options.stacked_tables} asks; the others are not"
    )
    return shape


def _warnings(shape: Shape, records: Sequence[SampleRecord], complete: bool) -> list[str]:
    out = []
    preamble = shape.skipped
    if preamble:
        lines = sum(s.end - s.line + 1 for s in preamble)
        out.append(f"{lines} preamble line{'s' if lines > 1 else ''} above the table skipped")
    if shape.trailer:
        text = " | ".join(s.text for s in shape.trailer)
        count = len(shape.trailer)
        out.append(f"{count} trailer row{'s' if count > 1 else ''} ignored: {text[:80]!r}")
    if shape.fit.dropped:
        k = shape.fit.dropped
        out.append(f"rows end with {k} empty field{'s' if k > 1 else ''} (trailing delimiter): dropped")
    if shape.fit.unnamed:
        out.append(
            f"the header names {shape.fit.width - shape.fit.unnamed} of {shape.fit.width} columns: "
            f"{shape.fit.unnamed} unnamed column{'s' if shape.fit.unnamed > 1 else ''} kept"
        )
    if shape.header_rows == 0:
        out.append(f"no header found: columns are named column_1..column_{shape.fit.width}")
    if shape.consistency < 0.9 and shape.fit.width >= 2:
        out.append(f"only {shape.consistency:.0%} of the sample rows have {shape.fit.width} fields")
    if shape.blank_values and complete:
        trailing = 0
        for record in reversed(records):
            if record.values:
                break
            trailing += 1
        if trailing:
            out.append(f"{trailing} blank line{'s' if trailing > 1 else ''} at the end of the file: not rows")
    return out
