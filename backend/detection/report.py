"""Human-readable text for `python -m backend detect FILE`."""

from __future__ import annotations

from collections.abc import Sequence

from backend.detection.dialect import DELIMITER_NAMES
from backend.models import ColumnKind, ColumnType, Detection

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
        ("Header rows", str(detection.header_rows) + ("" if detection.header_rows else " (names generated)")),
        ("Trailer rows", str(detection.trailer_rows)),
        ("Data rows", rows),
    ]
    width = max(len(label) for label, _ in facts)
    out = [f"{label.ljust(width)}  {value}" for label, value in facts]
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
