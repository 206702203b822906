"""The longest value and the empty cells of every column, counted on the way to the database.

Sizing text columns (`varchar(n)`) and the profile's empty counts need both for every row. Counted
here, from the batches the sink is given, they cost a pass over values already in memory
(vectorised on Arrow arrays); counted afterwards by a SQL scan of the written rows they cost as
much as writing them again on SQLite (1.8 s of a 7.6 s load of the 100 MB file,
bench/RESULTS.md, fifth round). The values are the file's text, which is what that scan read
back (`attempt.this_load` renders typed values as the file wrote them, NULL as the empty text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backend.db.adapter import Rows, Sink

#: A character beyond the Basic Multilingual Plane: two UTF-16 code units (RE2 syntax for Arrow).
_ASTRAL = r"[^\x{0000}-\x{FFFF}]"


class Measured:
    """A sink that counts lengths and empty cells, then passes every batch on unchanged.

    Lengths are in characters, or in UTF-16 code units with `utf16` (the adapter's
    `utf16_widths`), the unit the database's column width counts.
    """

    def __init__(self, sink: Sink, width: int, *, utf16: bool = False) -> None:
        self._sink = sink
        self._utf16 = utf16
        self.longest = [0] * width
        self.empty = [0] * width

    def rows(self, first: int, rows: Rows) -> None:
        if rows:
            longest, empty = self.longest, self.empty
            # Before the sink sees them: it may extend the lists with its own values.
            for i, cells in enumerate(zip(*rows, strict=True)):
                longest[i] = max(
                    longest[i], max(map(self._length, cells)) if self._utf16 else max(map(len, cells))
                )
                empty[i] += cells.count("")
        self._sink.rows(first, rows)

    def arrow(self, first: int, columns: Sequence[Any]) -> None:
        import pyarrow.compute as pc

        for i, column in enumerate(columns):
            if not len(column):
                continue
            octets = pc.binary_length(column)  # a tenth of utf8_length's cost
            self.empty[i] += pc.equal(octets, 0).true_count  # pc.sum of booleans: 8x slower
            # A value has at most as many characters as bytes: only values with more bytes than
            # the longest so far can be longer, and only they are counted in characters.
            longer = pc.filter(column, pc.greater(octets, self.longest[i]))
            if len(longer):
                lengths = pc.utf8_length(longer)
                if self._utf16:
                    lengths = pc.add(lengths, pc.count_substring_regex(longer, _ASTRAL))
                self.longest[i] = max(self.longest[i], pc.max(lengths).as_py() or 0)
        self._sink.arrow(first, columns)

    @staticmethod
    def _length(value: str) -> int:
        return len(value.encode("utf-16-le")) // 2
