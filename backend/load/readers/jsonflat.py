"""Flattening JSON objects into text columns: the plan (first pass) and the rows (second pass).

Rules (issue 17):

- Nested objects become dotted columns (``address.city``), in order of first appearance over
  the whole file; a key missing from a row, or JSON ``null``, is a null cell.
- Arrays are kept as compact JSON text (``[1,"a"]``).
- A key that holds an object in some rows and a scalar or array in others is not flattened:
  the whole value loads as text (``{"b":1}`` where it is an object), so nothing is lost.
- A key that only ever holds ``{}`` is one column with the text ``{}``.
- Scalars: strings verbatim, ``true``/``false``, numbers with their digits and scale as
  written (``1.50`` stays ``1.50``). Exponents are written out (``1e-05`` -> ``0.00001``)
  because the parsers hand numbers over as Decimal, which keeps the value but not its spelling.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from backend.errors import FileChangedError, HeaderError

_OBJECT, _LEAF, _NULL = 1, 2, 4
#: More distinct keys than this and the file is not a table (and the plan would grow unbounded).
MAX_COLUMNS = 16_384
Path = tuple[str, ...]


def json_number(value: int | Decimal) -> str:
    """A JSON number as text with its digits and scale; exponent notation written out."""
    if isinstance(value, int):
        return str(value)
    if -40 <= value.adjusted() <= 40:
        return format(value, "f")
    return str(value)  # 1E+300 stays short rather than three hundred digits


def compact(value: Any) -> str:
    """A JSON value as compact JSON text, numbers rendered like scalar cells."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return json_number(value)
    if isinstance(value, list):
        return "[" + ",".join(compact(v) for v in value) + "]"
    items = (json.dumps(str(k), ensure_ascii=False) + ":" + compact(v) for k, v in value.items())
    return "{" + ",".join(items) + "}"


def cell(value: Any) -> str | None:
    """A JSON value as one cell: null stays null, objects and arrays as compact JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return json_number(value)
    return compact(value)


class ColumnPlan:
    """Which dotted paths become columns, learned from every object of the file."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._kinds: dict[Path, int] = {}
        self._parents: set[Path] = set()
        self.rows = 0

    def observe(self, obj: dict[str, Any]) -> None:
        """Record the keys of one row object (first pass)."""
        self.rows += 1
        self._observe(obj, ())

    def _observe(self, obj: dict[str, Any], prefix: Path) -> None:
        kinds = self._kinds
        if prefix and obj:
            self._parents.add(prefix)
        for key, value in obj.items():
            path = (*prefix, key)
            kind = _OBJECT if isinstance(value, dict) else _NULL if value is None else _LEAF
            if path not in kinds and len(kinds) >= MAX_COLUMNS:
                raise HeaderError(
                    f"has more than {MAX_COLUMNS:,} distinct keys; a table needs far fewer columns. "
                    f"Export a flatter structure",
                    path=self._name,
                )
            kinds[path] = kinds.get(path, 0) | kind
            if kind == _OBJECT:
                self._observe(value, path)

    def columns(self) -> list[Path]:
        """Column paths in order of first appearance."""
        kinds = self._kinds
        out: list[Path] = []
        for path, kind in kinds.items():
            if any(kinds[path[:i]] & _LEAF for i in range(1, len(path))):
                continue  # inside a key that loads whole, as JSON text
            if kind & _LEAF or not kind & _OBJECT or path not in self._parents:
                out.append(path)
        names: dict[str, Path] = {}
        for path in out:
            joined = ".".join(path)
            if joined in names:
                raise HeaderError(
                    f"the keys {_show(names[joined])} and {_show(path)} both flatten to the column "
                    f"{joined!r}; rename one of them in the export",
                    path=self._name,
                )
            names[joined] = path
        return out

    def descend(self) -> set[Path]:
        """Paths whose objects are flattened into their children (second pass)."""
        kinds = self._kinds
        return {p for p in self._parents if not kinds[p] & _LEAF}


def _show(path: Path) -> str:
    return " -> ".join(repr(p) for p in path)


class RowFlattener:
    """Turns one row object into the cells of the plan's columns (second pass)."""

    def __init__(self, plan: ColumnPlan, name: str) -> None:
        self.paths = plan.columns()
        self.names = [".".join(p) for p in self.paths]
        self._index = {path: i for i, path in enumerate(self.paths)}
        self._descend = plan.descend()
        self._name = name

    def cells(self, obj: dict[str, Any]) -> list[str | None]:
        """The row's cells, None where the key is missing or null."""
        out: list[str | None] = [None] * len(self.paths)
        self._fill(obj.items(), (), out)
        return out

    def _fill(self, items: Iterable[tuple[str, Any]], prefix: Path, out: list[str | None]) -> None:
        for key, value in items:
            path = (*prefix, key)
            at = self._index.get(path)
            if at is not None:
                out[at] = cell(value)
            elif path in self._descend and (value is None or isinstance(value, dict)):
                if value:
                    self._fill(value.items(), path, out)
            else:
                raise FileChangedError(
                    f"the key {_show(path)} was not there on the first pass: the file changed "
                    f"while it was read; it will be loaded again",
                    path=self._name,
                )
