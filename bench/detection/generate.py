"""The benchmark corpus: clean source tables, each pollution applied systematically.

Per-row pollutions (a ragged row, a stray quote, a blank line) are applied at every row (and,
for stray quotes, every column) of the tables they use. The polluting code is the tests' own
(`tests/detection/corpus.py`), so the benchmark and the test suite agree on what each
pollution means.
"""

from __future__ import annotations

from collections.abc import Iterator

from tests.detection import corpus as C


def source_tables() -> list[C.Table]:
    """Clean tables of different widths with quoted text, numbers, dates and empty cells."""
    return [C.people(10), C.tricky(10), C.plain(8), C.wide(10), C.narrow(10), C.codes(8)]


def _encodings() -> Iterator[C.Case]:
    styles = [
        ("utf-8", C.Style()),
        ("utf-8-bom", C.Style(bom=True)),
        ("utf-16-le", C.Style(encoding="utf-16-le", bom=True)),
        ("utf-16-be", C.Style(encoding="utf-16-be", bom=True)),
        ("cp1252", C.Style(encoding="cp1252")),
    ]
    for table in (C.western(), C.people(10), C.western(12, seed=21), C.latin()):
        for label, style in styles:
            if label == "cp1252" and table.name == "latin":
                continue
            yield C.write(table, style, name=f"{table.name}/encoding/{label}", category="encoding")
    yield C.write(C.latin(), C.Style(encoding="latin-1"), name="latin/encoding/latin-1", category="encoding")
    yield C.write(
        C.latin(30, seed=5), C.Style(encoding="latin-1"), name="latin2/encoding/latin-1", category="encoding"
    )
    for table in (C.japanese(), C.japanese(30, seed=3)):
        yield C.write(
            table, C.Style(encoding="shift_jis"), name=f"{table.name}/encoding/sjis", category="encoding"
        )
    for table in (C.chinese(), C.chinese(30, seed=3)):
        yield C.write(
            table, C.Style(encoding="gb18030"), name=f"{table.name}/encoding/gb18030", category="encoding"
        )


def build() -> list[C.Case]:
    """Every polluted file of the benchmark, with its category and clean truth."""
    tables = source_tables()
    people, plain, wide, narrow, codes = tables[0], tables[2], tables[3], tables[4], tables[5]
    cases: list[C.Case] = []
    cases += _encodings()
    cases += C.delimiter_cases(tables)
    cases.append(
        C.write(C.single(20, seed=9), C.Style(), name="single2/delimiter/single-column", category="delimiter")
    )
    cases += C.quoting_cases(tables)
    cases += C.stray_quote_cases(C.truncated(people, 8))
    cases += C.stray_quote_cases(C.truncated(plain, 6))
    # A stray quote in a file that also quotes fields properly: no single dialect reads it.
    tricky = tables[1]
    for r in range(len(tricky.rows)):
        style = C.Style(stray_quote=(r, 3))
        cases.append(
            C.write(tricky, style, name=f"tricky/quoting/stray-and-real-quotes-r{r}", category="quoting")
        )
    cases += C.line_ending_cases(tables)
    for table in (people, wide, narrow):
        cases += C.blank_line_cases(table)
    cases += C.structure_cases(tables)
    for table in tables:
        cases += C.edge_cases(table)
    for table in (people, plain, codes, wide):
        cases += C.ragged_cases(table)
    headers = [
        C.write(C.years(), C.Style(), name="years/header/numeric", category="header"),
        C.write(C.years(8, seed=4), C.Style(), name="years2/header/numeric", category="header"),
        C.write(
            C.with_header(people, ["id", "", "city", "id", "", "active", "note"]),
            C.Style(),
            name="people/header/blank-dup",
            category="header",
        ),
        C.write(
            C.with_header(plain, ["a", "a", "a", "b", ""]),
            C.Style(),
            name="plain/header/blank-dup",
            category="header",
        ),
        C.write(codes, C.Style(), name="codes/header/all-text", category="header"),
        C.write(codes, C.Style(header=False), name="codes/header/all-text-none", category="header"),
        # Names only, no header, nothing repeated: nothing tells the first row from the rest.
        C.write(
            C.single(12, seed=4), C.Style(header=False), name="single/header/names-none", category="header"
        ),
    ]
    cases += headers
    return cases
