"""Small facts about one record's cells that the layout rules share."""

from __future__ import annotations

import re
from collections.abc import Sequence

#: A title cell is a sentence, not a label: this long, or this many words.
TITLE_CHARS = 20
TITLE_WORDS = 3
_WORD = re.compile(r"\S+")


def filled(values: Sequence[str]) -> int:
    """How many cells hold something other than spaces."""
    return sum(1 for v in values if v.strip())


def is_empty(values: Sequence[str]) -> bool:
    """A blank line or a line of only delimiters (every cell empty or spaces)."""
    return not any(v.strip() for v in values)


def content_width(values: Sequence[str]) -> int:
    """Position of the last non-empty cell, plus one (0 for an empty record)."""
    for j in range(len(values) - 1, -1, -1):
        if values[j].strip():
            return j + 1
    return 0


def title_like(values: Sequence[str]) -> bool:
    """One non-empty cell holding a sentence (a title, a period line, a note), not a label.

    A label above a column (``Group A``, ``Sales``) is short; a title is long, has several
    words, spans lines, or introduces a value (``Period: Q3``).
    """
    cells = [v.strip() for v in values if v.strip()]
    if len(cells) != 1:
        return False
    text = cells[0]
    return (
        len(text) >= TITLE_CHARS
        or len(_WORD.findall(text)) >= TITLE_WORDS
        or "\n" in text
        or "\r" in text
        or ":" in text
    )


def shown(values: Sequence[str], delimiter: str, limit: int = 80) -> str:
    """The record as one line of text, for reports (line breaks shown as \\n, cut to `limit`)."""
    text = delimiter.join(values).replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"
