"""Human-readable text for `python -m backend detect FILE`."""

from __future__ import annotations

from collections.abc import Sequence

from backend.detection.dialect import DELIMITER_NAMES
from backend.models import ColumnKind, ColumnType, Detection, SkippedLine
from backend.naming import name_clashes

_LINE_ENDINGS = {"\n": "LF", "\r\n": "CRLF", "\r": "CR", "mixed": "mixed"}


def describe_type(column_type: ColumnType) -> str:
    """``text(12)``, ``decimal(9,2)``, ``date %d/%m/%Y``..."""
    kind = column_type.kind
    if kind is ColumnKind.TEXT:
        return f"text({column_type.length})"
    if kind is ColumnKind.DECIMAL:
        return f"decimal({column_type.precision},{column_type.scale})"
    if kind in (ColumnKind.DATE, ColumnKind.DATETIME):
        return f"{kind.value} {column_type.date_format}"
    return str(kind.value)


def _delimiter(delimiter: str) -> str:
    name = DELIMITER_NAMES.get(delimiter)
    shown = repr(delimiter)
    return f"{name} ({shown})" if name else shown


def _quote(detection: Detection) -> str:
    if detection.quotechar is None:
        return "none (quote characters are data)"
    how = "doubled to escape" if detection.doublequote else "not doubled"
    return f"{detection.quotechar} ({how})"


def _lines(skipped: SkippedLine) -> str:
    if not skipped.line:
        return "end"
    return f"line {skipped.line}" if skipped.end == skipped.line else f"lines {skipped.line}-{skipped.end}"


def _layout(detection: Detection, columns: Sequence[str]) -> list[str]:
    """What was skipped above the table, dropped from it or below it, renamed and stacked."""
    out: list[str] = []
    if detection.skipped_lines:
        out.append("Skipped above the header:")
        out.extend(f"  {_lines(s)}: {s.reason}: {s.text!r}" for s in detection.skipped_lines)
    if detection.dropped_trailing_columns:
        k = detection.dropped_trailing_columns
        out.append(
            f"Dropped: {k} empty trailing field{'s' if k > 1 else ''} per row (a trailing delimiter); "
            f"a row with a value there keeps it"
        )
    if detection.unnamed_columns:
        k = detection.unnamed_columns
        out.append(f"Unnamed: the data has {k} more column{'s' if k > 1 else ''} than the header names")
    if detection.trailer_lines:
        out.append("Trailer (not loaded):")
        out.extend(f"  {_lines(s)}: {s.reason}: {s.text!r}" for s in detection.trailer_lines)
    if detection.header_rows:
        clashes = name_clashes(detection.headers, columns)
        if clashes:
            out.append("Renamed (names that clash once normalised; export writes the originals):")
            out.extend(
                f"  {raw!r} -> {column} (clashes with {earlier!r})" for raw, column, earlier in clashes
            )
    if detection.blocks:
        out.append("Stacked tables:")
        for i, block in enumerate(detection.blocks):
            mark = "  (read)" if i == detection.block else ""
            out.append(f"  {i + 1}. {block.describe()}, {block.rows} rows{mark}")
    return out


def format_detection(detection: Detection, columns: Sequence[str]) -> str:
    """A table of what `detect` found, then one line per column (original, normalized, type).

    Args:
        detection: the result of `detect`.
        columns: the normalized column names (same order as ``detection.headers``).
    """
    encoding = f"{detection.encoding} (confidence {detection.encoding_confidence:.2f}"
    encoding += ", BOM)" if detection.bom else ")"
    if detection.sample_rows == detection.estimated_rows:
        rows = f"{detection.sample_rows:,}"
    else:
        rows = f"~{detection.estimated_rows or 0:,} estimated ({detection.sample_rows:,} in the sample)"
    padding = getattr(detection, "skipinitialspace", False)
    facts = [
        ("Encoding", encoding),
        ("Delimiter", _delimiter(detection.delimiter) + (", spaces after it dropped" if padding else "")),
        ("Quote", _quote(detection)),
        ("Escape", repr(detection.escapechar) if detection.escapechar else "none"),
        ("Line endings", _LINE_ENDINGS.get(detection.line_terminator, repr(detection.line_terminator))),
        ("Preamble lines", str(detection.skip_rows)),
        (
            "Header rows",
            str(detection.header_rows)
            + ("" if detection.header_rows else " (names generated)")
            + (" (forced)" if detection.header_forced else ""),
        ),
        ("Trailer rows", str(detection.trailer_rows)),
        ("Data rows", rows),
    ]
    width = max(len(label) for label, _ in facts)
    out = [f"{label.ljust(width)}  {value}" for label, value in facts]
    out.extend(_layout(detection, columns))
    if detection.warnings:
        out.append("Warnings:")
        out.extend(f"  - {warning}" for warning in detection.warnings)

    headers = list(detection.headers) if detection.header_rows else ["" for _ in columns]
    types = list(detection.column_types)
    table = [("#", "original", "column", "type")]
    for i, column in enumerate(columns):
        original = headers[i] if i < len(headers) else ""
        kind = describe_type(types[i]) if i < len(types) else "?"
        table.append((str(i + 1), original, column, kind))
    widths = [max(len(row[k]) for row in table) for k in range(4)]
    out.append("")
    out.append("Columns:")
    for row in table:
        out.append("  " + "  ".join(cell.ljust(widths[k]) for k, cell in enumerate(row)).rstrip())
    return "\n".join(out)
