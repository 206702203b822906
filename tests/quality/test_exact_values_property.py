"""Property tests: what goes in comes out exactly, or the file is refused and nothing changes.

Random cell contents (control characters, lone CRs, quotes, delimiters, Unicode) load into text
columns and export back equal; random values for a typed table either all load exactly (the
export equals the files) or the file is refused and the table stays as it was. SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import csv
import io
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.errors import FileRejectedError
from backend.models import LoadType, TypePolicy
from backend.ops.export import export_table

_names = itertools.count()
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any character but the surrogates (not encodable) and C0 controls other than TAB, CR and LF:
# NUL cannot be stored by PostgreSQL, and a tiny file dense with control bytes is refused as
# binary by detection (test_control_characters_come_back_exactly loads them in a real-sized file).
_CONTROLS = "".join(chr(c) for c in range(32) if chr(c) not in "\t\r\n")
cells = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=_CONTROLS), max_size=12
)


def write(path, rows) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)


def export(env, table: str) -> list[list[str]]:
    out = io.StringIO()
    export_table(env.db, table, out)
    return list(csv.reader(io.StringIO(out.getvalue(), newline="")))


@PROPERTY
@given(rows=st.lists(st.tuples(cells, cells), min_size=1, max_size=8))
def test_text_cells_come_back_exactly(env, rows):
    """Whatever the cells hold, a text load exports them back equal (an empty cell stays empty)."""
    table = f"t{next(_names)}"
    data = [["id", "a", "b"]] + [[str(i), a, b] for i, (a, b) in enumerate(rows, 1)]
    path = env.tmp / f"{table}.csv"
    write(path, data)
    env.load(path)
    assert export(env, table) == data


def test_control_characters_come_back_exactly(env):
    """Control characters inside cells of an ordinary file are loaded and exported unchanged."""
    data = [["id", "text"]] + [
        [str(i), f"row {i} of an ordinary export, nothing odd here"] for i in range(200)
    ]
    data += [["900", "bell\x07 vtab\x0b esc\x1b[0m unit\x1f"], ["901", "cr\ronly and \r\n both"]]
    path = env.tmp / "controls.csv"
    write(path, data)
    env.load(path)
    assert export(env, "controls") == data


GOOD = {
    "n": ["0", "7", "-12", "2147483647"],
    "p": ["1.50", "-0.25", "100.00"],
    "b": ["Yes", "No"],
    "d": ["31/01/2024", "29/02/2024", "01/12/1999"],
}
NEAR = {
    "n": ["007", "2.5", "abc", "-0", " 1", "1e3", "+4", "2147483648", "n/a", "1,000"],
    "p": ["1.5", "1.505", "-0.00", "1", "abc", "1.50 ", "1e2"],
    "b": ["yes", "true", "maybe", "YES", "1", " Yes"],
    "d": ["2024-01-31", "30/02/2024", "29/02/2023", "1/2/2024", "soon", "31/1/2024"],
}


def column_values(name: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(GOOD[name]), st.sampled_from(NEAR[name]), st.just(""), cells)


typed_rows = st.lists(st.tuples(*(column_values(c) for c in ("n", "p", "b", "d"))), min_size=1, max_size=6)


@PROPERTY
@given(rows=typed_rows, append=st.booleans())
def test_a_second_load_into_a_typed_table_is_exact_or_refused(env, rows, append):
    """Every value fits exactly (the export equals the files) or the file is refused, the table unchanged."""
    table = f"t{next(_names)}"
    first = [["k", "n", "p", "b", "d"], ["a", "1", "2.00", "Yes", "15/03/2024"], ["b", "2", "3.25", "No", ""]]
    path = env.tmp / f"{table}.csv"
    write(path, first)
    env.load(path, type_policy=TypePolicy.INFER)
    before = export(env, table)
    assert before == first
    second = [first[0]] + [[f"r{i}", *values] for i, values in enumerate(rows)]
    write(path, second)
    load_type = LoadType.APPEND if append else LoadType.FULLLOAD
    try:
        env.load(path, load_type=load_type)
    except FileRejectedError:
        # Refused: for a misfit (RowError) or anything else detection or planning found.
        assert export(env, table) == before
        return
    assert export(env, table) == (first + second[1:] if append else second)
