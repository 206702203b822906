"""Human-readable text for `python -m backend detect FILE`."""

from __future__ import annotations

from collections.abc import Sequence

from backend.detection.dialect import DELIMITER_NAMES
from backend.models import ColumnKind, ColumnType, Detection, SkippedLine
from backend.naming import name_clashes

_LINE_ENDINGS = {"\n": "LF", "\r\n": "CRLF", "\r": "CR", "mixed": "mixed"}
#: Formats read as delimited text (compressed or not): only they have an encoding and a dialect.
_TEXT_FORMATS = frozenset({"csv"})
#: Formats whose rows may have a preamble above the table and a trailer below it.
_SHEET_FORMATS = frozenset({"xlsx", "xlsm", "xls"})
_LABEL_WIDTH = 14
#: `Detection.to_dict` keys that describe how delimited text is decoded and split.
DIALECT_KEYS = (
    "encoding",
    "encoding_confidence",
    "bom",
    "delimiter",
    "quotechar",
    "escapechar",
    "doublequote",
    "skipinitialspace",
    "line_terminator",
)
#: Keys about rows that are not records (preamble, trailer, stacked tables, CSV-only repairs).
_LAYOUT_KEYS = (
    "skip_rows",
    "trailer_rows",
    "skipped_lines",
    "trailer_lines",
    "dropped_trailing_columns",
    "unnamed_columns",
    "blank_lines_are_values",
    "blocks",
    "block",
    "last_line",
)


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
    facts = _dialect_facts(detection) if detection.format in _TEXT_FORMATS else []
    if detection.format in _TEXT_FORMATS or detection.format in _SHEET_FORMATS:
        above = "Preamble lines" if detection.format in _TEXT_FORMATS else "Rows above"
        facts.append((above, str(detection.skip_rows)))
        facts.append(("Header rows", _header(detection)))
        facts.append(("Trailer rows", str(detection.trailer_rows)))
    facts.append(("Data rows", _rows(detection)))
    # Aligned with the format lines above them (`readers.source.describe_format`).
    width = max(_LABEL_WIDTH, *(len(label) for label, _ in facts))
    out = [f"{label.ljust(width)}  {value}" for label, value in facts]
    if detection.format in _TEXT_FORMATS or detection.format in _SHEET_FORMATS:
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


def applicable_facts(detection: Detection) -> dict[str, object]:
    """`detection.to_dict()` without what does not apply to its format (for ``detect --json``):
    no encoding or dialect unless it is delimited text, no preamble or trailer for JSON and
    Parquet, whose records are all rows."""
    facts = detection.to_dict()
    drop: tuple[str, ...] = ()
    if detection.format not in _TEXT_FORMATS:
        drop += DIALECT_KEYS
        if detection.format not in _SHEET_FORMATS:
            drop += _LAYOUT_KEYS
    return {key: value for key, value in facts.items() if key not in drop}


def _dialect_facts(detection: Detection) -> list[tuple[str, str]]:
    encoding = f"{detection.encoding} (confidence {detection.encoding_confidence:.2f}"
    encoding += ", BOM)" if detection.bom else ")"
    padding = getattr(detection, "skipinitialspace", False)
    return [
        ("Encoding", encoding),
        ("Delimiter", _delimiter(detection.delimiter) + (", spaces after it dropped" if padding else "")),
        ("Quote", _quote(detection)),
        ("Escape", repr(detection.escapechar) if detection.escapechar else "none"),
        ("Line endings", _LINE_ENDINGS.get(detection.line_terminator, repr(detection.line_terminator))),
    ]


def _header(detection: Detection) -> str:
    return (
        str(detection.header_rows)
        + ("" if detection.header_rows else " (names generated)")
        + (" (forced)" if detection.header_forced else "")
    )


def _rows(detection: Detection) -> str:
    if detection.sample_rows == detection.estimated_rows:
        return f"{detection.sample_rows:,}"
    if detection.estimated_rows is None:
        return f"{detection.sample_rows:,} in the sample (the total is counted as the file loads)"
    if detection.format == "parquet":
        return f"{detection.estimated_rows:,} (the file's footer)"
    return f"~{detection.estimated_rows:,} estimated ({detection.sample_rows:,} in the sample)"
