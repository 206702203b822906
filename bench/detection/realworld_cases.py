"""The real-world corpus: hand-made files in the shapes real exports have, with hand-written truth.

Each ``realworld/<name>.<ext>`` file (the bytes as an exporter writes them) has a
``realworld/<name>.expected.json`` beside it, written by hand and never produced by the code
under test:

* ``{"header": [...] | null, "rows": [[...], ...]}``: the header as written in the file
  (``null`` when the file has none) and every data row, values exactly as in the file;
* or ``{"refused": "text"}``: the file must be refused with a reason containing ``text``.

``shape`` and ``source`` say which real-world shape and which exporter the file imitates.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.detection.corpus import Case

FOLDER = Path(__file__).resolve().parent / "realworld"
CATEGORY = "realworld"
_SUFFIX = ".expected.json"


def build(folder: Path = FOLDER) -> list[Case]:
    """Every real-world file with its expected table (or expected refusal), sorted by name."""
    cases = []
    for expected in sorted(folder.glob("*" + _SUFFIX)):
        stem = expected.name[: -len(_SUFFIX)]
        inputs = [p for p in folder.glob(stem + ".*") if p != expected]
        if len(inputs) != 1:
            raise ValueError(f"{expected.name}: expected exactly one input file, found {inputs}")
        truth = json.loads(expected.read_text(encoding="utf-8"))
        data = inputs[0].read_bytes()
        name = f"{CATEGORY}/{inputs[0].name}"
        if "refused" in truth:
            cases.append(Case(name, CATEGORY, data, None, (), refused=truth["refused"]))
            continue
        header = tuple(truth["header"]) if truth["header"] is not None else None
        rows = tuple(tuple(r) for r in truth["rows"])
        width = len(header) if header is not None else (len(rows[0]) if rows else 0)
        cases.append(Case(name, CATEGORY, data, header, rows, width=width))
    return cases
