"""What a load says about the file's layout, and where the other stacked tables' records go.

A file of several stacked tables is loaded only when its table policy says which one
(``stacked_tables: first|largest``, issue 16 item 5); the records of the other tables are not
dropped silently but written to the load's rejects file, in the format `RAGGED_ROWS=skip`
uses (``line`` then the fields), so the operator can load them from there.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import IO

from backend.load.csv_python import iter_rows
from backend.models import Detection, LoadResult


def write_other_blocks(
    raw: IO[bytes], detection: Detection, rejects_path: Path, *, decode_errors: str = "strict"
) -> int:
    """Append the records of every stacked table but the one read to `rejects_path`.

    Returns:
        The number of records written (0 for a file of one table).
    """
    if not detection.blocks or detection.block is None:
        return 0
    others = [b for i, b in enumerate(detection.blocks) if i != detection.block]
    # Every non-blank record of the file, with its physical line: the same reader as the load.
    whole = dataclasses.replace(
        detection,
        skip_rows=0,
        header_rows=0,
        trailer_rows=0,
        dropped_trailing_columns=0,
        blank_lines_are_values=False,
        last_line=None,
    )
    raw.seek(0)
    written = 0
    new = not rejects_path.exists() or rejects_path.stat().st_size == 0
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    with rejects_path.open("a", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        if new:
            writer.writerow(["line", "fields"])
        for _number, line, values in iter_rows(raw, whole, decode_errors=decode_errors):
            if any(b.first_line <= line and (b.last_line is None or line <= b.last_line) for b in others):
                writer.writerow([line, *values])
                written += 1
    return written


def load_notes(result: LoadResult) -> list[str]:
    """What an operator must know about how the file was read: no header, a trailer, stacked tables."""
    detection = result.detection
    notes: list[str] = []
    width = len(detection.headers)
    if detection.header_rows == 0:
        how = "--no-header / header: absent" if detection.header_forced else "no header row found"
        notes.append(
            f"{how}: columns named column_1…column_{width}"
            + ("" if detection.header_forced else "; use --header to force one")
        )
    if detection.trailer_lines:
        shown = " | ".join(s.text for s in detection.trailer_lines)
        count = len(detection.trailer_lines)
        notes.append(
            f"{count} trailer record{'s' if count > 1 else ''} not loaded: {shown[:120]!r} "
            "(set trailer_detection: false in the table's policy to load them)"
        )
    if detection.blocks and detection.block is not None:
        read = detection.blocks[detection.block]
        others = ", ".join(b.describe() for i, b in enumerate(detection.blocks) if i != detection.block)
        notes.append(
            f"stacked tables: loaded table {detection.block + 1} ({read.describe()}); "
            f"{result.block_records_rejected} records of the others ({others}) written to the rejects file"
        )
    return notes
