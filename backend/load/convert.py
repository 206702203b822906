"""Values into typed columns, checked exactly before anything is written, and back out as text.

A typed column takes a value only when the column's type writes the stored value back as that
very text (`backend.detection.types.exact_pattern`): ``007``, ``2.5`` or ``abc`` never go into
an INTEGER column, ``1.25`` never into a DECIMAL(3, 1), ``maybe`` never into a BOOLEAN, ``soon``
never into a DATE. The check runs on every batch while the file streams into staging, so a file
with one misfit is refused (or its column widened, if the table's policy says so) before the
live table is touched; the SQL that converts the staged text afterwards can then neither round
nor default. `render` is the way back, used by `export`: stored value + column type -> text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from backend.detection.types import NEGATIVE_ZERO, calendar_ok, exact_pattern, fits_range
from backend.models import ColumnKind, ColumnType

#: Misfits remembered per column for the error message (the count goes on).
MAX_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Misfit:
    """The first values of one column that its type cannot hold exactly."""

    column: str
    column_type: ColumnType
    #: (data row number, value) of the first misfits, in file order.
    examples: tuple[tuple[int, str], ...]
    count: int


def describe(column_type: ColumnType) -> str:
    """What a column of `column_type` takes, in words for an error message."""
    kind = column_type.kind
    if kind is ColumnKind.INTEGER:
        return "an integer (32-bit, no leading zeros, no sign but '-')"
    if kind is ColumnKind.BIGINT:
        return "an integer (64-bit, no leading zeros, no sign but '-')"
    if kind is ColumnKind.DECIMAL:
        p, s = column_type.precision, column_type.scale
        if s == 0:
            return f"an integer of at most {p} digits"
        return f"a decimal with exactly {s} decimal places and at most {p - s} digits before the point"
    if kind is ColumnKind.BOOLEAN:
        return f"{column_type.true_text or 'true'!r} or {column_type.false_text or 'false'!r}"
    if kind in (ColumnKind.DATE, ColumnKind.DATETIME):
        from backend.detection.types import DEFAULT_FORMATS

        return f"a {kind.value} written as {column_type.date_format or DEFAULT_FORMATS[kind]}"
    return "text"


class _ColumnCheck:
    """The exact-fit test of one typed column, run on a whole batch of its values at once."""

    def __init__(self, name: str, column_type: ColumnType) -> None:
        self.name = name
        self.column_type = column_type
        pattern = exact_pattern(column_type)
        self._one = re.compile(pattern)
        # One C-level match over the newline-joined batch answers "all fit" in the common case.
        self._all = re.compile(f"(?:{pattern})(?:\\n(?:{pattern}))*")
        kind = column_type.kind
        self._ranged = kind in (ColumnKind.INTEGER, ColumnKind.BIGINT)
        self._decimal = kind is ColumnKind.DECIMAL
        self._dated = kind in (ColumnKind.DATE, ColumnKind.DATETIME)
        self.examples: list[tuple[int, str]] = []
        self.count = 0

    def check(self, values: Sequence[str | None], first_row: int) -> None:
        present = [v for v in values if v]
        if not present:
            return
        joined = "\n".join(present)
        if (
            joined.count("\n") == len(present) - 1
            and self._all.fullmatch(joined)
            and self._whole_ok(joined)
            and (not self._ranged or all(fits_range(self.column_type, v) for v in present if len(v) >= 10))
        ):
            return
        for offset, value in enumerate(values):
            if value and not self.fits(value):
                self.count += 1
                if len(self.examples) < MAX_EXAMPLES:
                    self.examples.append((first_row + offset, value))

    def surely_fit(self, column: Any) -> bool:
        """True only when every value of the Arrow string array `column` fits (RE2 kernels, no
        Python per value); False means "look closer" with `check`, never "a misfit"."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.count:
            return False  # after a misfit every value is checked one by one, to count them all
        try:
            matched = pc.match_substring_regex(column, f"^(?:{self._one.pattern})$")
        except pa.ArrowInvalid:
            return False  # a pattern RE2 does not take: Python decides
        if not pc.all(pc.or_(pc.equal(column, ""), matched)).as_py():
            return False
        if self._ranged:
            # Ten digits and more may pass the pattern and not the range.
            return not pc.any(pc.greater_equal(pc.utf8_length(column), 10)).as_py()
        if self._decimal:
            return not pc.any(pc.match_substring_regex(column, r"^-0(?:\.0*)?$")).as_py()
        # A date's 29 February needs its year: checked in Python (`calendar_ok`).
        return not self._dated

    def fits(self, value: str) -> bool:
        if not self._one.fullmatch(value) or not self._whole_ok(value):
            return False
        return not self._ranged or fits_range(self.column_type, value)

    def _whole_ok(self, joined: str) -> bool:
        if self._decimal:
            return not NEGATIVE_ZERO.search(joined)
        if self._dated:
            return calendar_ok(self.column_type, joined)
        return True


class Checker:
    """Checks every batch's values against the typed columns they are going into.

    Args:
        targets: batch column position -> (column name, the column's stored type); text
            columns need no check and are left out.
    """

    def __init__(self, targets: dict[int, tuple[str, ColumnType]]) -> None:
        self._checks = {i: _ColumnCheck(name, t) for i, (name, t) in targets.items()}

    def __bool__(self) -> bool:
        return bool(self._checks)

    def observe_rows(self, first_row: int, rows: Sequence[Sequence[str]]) -> None:
        """Check a batch of rows numbered `first_row`, `first_row` + 1, ..."""
        for i, check in self._checks.items():
            check.check([row[i] if i < len(row) else None for row in rows], first_row)

    def observe_arrow(self, first_row: int, columns: Sequence[Any]) -> None:
        """Check a batch given as Arrow string arrays (one per column), vectorised where it can."""
        for i, check in self._checks.items():
            column = columns[i]
            if not check.surely_fit(column):
                check.check(column.to_numpy(zero_copy_only=False).tolist(), first_row)

    def misfits(self) -> dict[str, Misfit]:
        """Column name -> its misfits, for every column that had any."""
        return {
            c.name: Misfit(c.name, c.column_type, tuple(c.examples), c.count)
            for c in self._checks.values()
            if c.count
        }


def render(value: Any, column_type: ColumnType | None) -> str:
    """A stored value as the text the file had (`column_type` says how it was written; None:
    the database's own rendering, for tables whose formats were never recorded)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        if column_type is not None and column_type.kind is ColumnKind.BOOLEAN:
            return (column_type.true_text or "true") if value else (column_type.false_text or "false")
        return "true" if value else "false"
    if isinstance(value, datetime):
        fmt = column_type.date_format if column_type is not None else None
        return value.strftime(fmt) if fmt else value.isoformat(sep=" ")
    if isinstance(value, date):
        fmt = column_type.date_format if column_type is not None else None
        return value.strftime(fmt) if fmt else value.isoformat()
    if isinstance(value, Decimal):
        if column_type is not None and column_type.kind is ColumnKind.DECIMAL:
            return f"{value:.{column_type.scale}f}"
        # "f": never an exponent (PostgreSQL hands 0.00000000 over as Decimal('0E-8')).
        return format(value, "f")
    return str(value)
