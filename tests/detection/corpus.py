"""Polluted CSV files generated from clean tables, each with the truth it must read back as.

A `Table` is clean data (header + rows of strings). `write` renders it with one set of
`Style` choices (encoding, delimiter, quoting, line endings, layout...) into bytes, and
returns a `Case`: the bytes, the header and cells a perfect reader returns, and the
Detection fields a perfect detector reports. The tests and the detection benchmark
(`bench/detection`) both build their files here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# --------------------------------------------------------------------------- clean tables


@dataclass(frozen=True)
class Table:
    """Clean data: a header and rows of equal width, every cell a string."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def width(self) -> int:
        return len(self.header)


_FIRST = ["Anna", "Bob", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Karin", "Liam"]
_LAST = ["Smith", "O'Neil", "Durand", "Ivanov", "Lee", "Haddad", "Hopper", "Tanaka", "Silva", "Berg", "Olsen"]
_CITIES = ["Paris", "Berlin", "Lyon", "Oslo", "Porto", "Kyoto", "Quebec", "Graz", "Turin", "Ghent"]


def people(rows: int = 24, seed: int = 1) -> Table:
    """Typed columns (integer, text, date, decimal, boolean) with some empty cells."""
    rng = random.Random(seed)
    out = []
    for i in range(rows):
        out.append(
            (
                str(100 + i),
                f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                rng.choice(_CITIES),
                f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                f"{rng.randint(0, 999)}.{rng.randint(0, 99):02d}",
                rng.choice(["true", "false"]),
                "" if i % 3 else rng.choice(["vip", "new", "late payer"]),
            )
        )
    return Table("people", ("id", "name", "city", "born", "score", "active", "note"), tuple(out))


def codes(rows: int = 20, seed: int = 2) -> Table:
    """Only text columns: zip codes with leading zeros, repeating country names, short codes."""
    rng = random.Random(seed)
    countries = ["France", "Germany", "Norway", "Japan", "Canada"]
    out = []
    for _ in range(rows):
        country = rng.choice(countries)
        out.append((f"{rng.randint(0, 99999):05d}", country, country[:2].upper() + str(rng.randint(10, 99))))
    return Table("codes", ("zip", "country", "code"), tuple(out))


def tricky(rows: int = 16, seed: int = 3) -> Table:
    """Cells holding delimiters, quotes, apostrophes and line breaks."""
    rng = random.Random(seed)
    notes = [
        "plain",
        "with, comma",
        'say "hi"',
        "two\nlines",
        "semi; colon",
        "pipe | bar",
        "tab\there",
        "it's",
        "",
        "x",
    ]
    out = []
    for i in range(rows):
        out.append(
            (str(i + 1), rng.choice(notes), f"{rng.randint(1, 99)}.{rng.randint(0, 9)}", rng.choice(_CITIES))
        )
    return Table("tricky", ("id", "note", "amount", "city"), tuple(out))


def plain(rows: int = 20, seed: int = 4) -> Table:
    """No delimiter, quote or line break inside any cell (safe for unquoted styles)."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        out.append(
            (
                f"{rng.choice(_FIRST)}",
                str(rng.randint(-500, 5000)),
                f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1990, 2024)}",
                rng.choice(["yes", "no"]),
                f"{rng.random() * 100:.3f}",
            )
        )
    return Table("plain", ("first", "delta", "day", "ok", "ratio"), tuple(out))


def wide(rows: int = 30, seed: int = 5) -> Table:
    """Twelve columns of mixed kinds."""
    rng = random.Random(seed)
    header = ("k", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "l")
    out = []
    for i in range(rows):
        out.append(
            (
                str(i),
                rng.choice(_CITIES),
                str(rng.randint(0, 10**6)),
                f"{rng.random():.4f}",
                rng.choice(["A", "B", "C", ""]),
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
                rng.choice(_FIRST),
                str(rng.randint(1, 9)),
                rng.choice(["x", "y"]),
                f"{rng.randint(100, 999)}",
                rng.choice(["alpha beta", "gamma", "delta epsilon"]),
                f"{rng.randint(0, 99999):05d}",
            )
        )
    return Table("wide", header, tuple(out))


def narrow(rows: int = 25, seed: int = 6) -> Table:
    """Two columns."""
    rng = random.Random(seed)
    return Table("narrow", ("key", "value"), tuple((f"k{i}", str(rng.randint(1, 1000))) for i in range(rows)))


def single(rows: int = 15, seed: int = 7) -> Table:
    """One column, no delimiter anywhere."""
    rng = random.Random(seed)
    return Table(
        "single", ("name",), tuple((f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",) for _ in range(rows))
    )


def western(rows: int = 20, seed: int = 8) -> Table:
    """Accents, the euro sign and smart quotes: all in cp1252."""
    rng = random.Random(seed)
    items = ["Café crème", "Naïve “smart” quote", "Señor Müller’s", "Zoë – Ålund", "Crème brûlée…", "Garçon"]
    out = []
    for i in range(rows):
        out.append(
            (
                str(i + 1),
                rng.choice(items),
                f"{rng.randint(1, 50)}€",
                rng.choice(["Genève", "Tromsø", "Köln"]),
            )
        )
    return Table("western", ("nr", "article", "price", "ville"), tuple(out))


def latin(rows: int = 20, seed: int = 9) -> Table:
    """Latin-1 letters only (no euro sign or smart quotes)."""
    rng = random.Random(seed)
    words = ["José", "São Paulo", "François", "Ærøskøbing", "Übermaß", "Ñandú", "façade", "Øresund"]
    return Table(
        "latin",
        ("word", "other", "n"),
        tuple((rng.choice(words), rng.choice(words), str(i)) for i in range(rows)),
    )


def japanese(rows: int = 20, seed: int = 10) -> Table:
    rng = random.Random(seed)
    names = ["山田太郎", "鈴木花子", "佐藤次郎", "田中一郎", "高橋美咲", "伊藤健太"]
    cities = ["東京", "大阪", "名古屋", "札幌", "福岡", "京都"]
    return Table(
        "japanese",
        ("名前", "都市", "価格"),
        tuple((rng.choice(names), rng.choice(cities), str(rng.randint(100, 9999))) for _ in range(rows)),
    )


def chinese(rows: int = 20, seed: int = 11) -> Table:
    rng = random.Random(seed)
    names = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊"]
    cities = ["北京", "上海", "广州", "深圳", "成都", "杭州"]
    return Table(
        "chinese",
        ("姓名", "城市", "价格"),
        tuple((rng.choice(names), rng.choice(cities), str(rng.randint(100, 9999))) for _ in range(rows)),
    )


def years(rows: int = 12, seed: int = 12) -> Table:
    """A numeric-looking header: years above counts."""
    rng = random.Random(seed)
    return Table(
        "years",
        ("country", "2019", "2020", "2021"),
        tuple((c, *(str(rng.randint(10000, 99999)) for _ in range(3))) for c in _CITIES[:rows]),
    )


CLEAN_TABLES = (people, codes, tricky, plain, wide, narrow)


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Style:
    """How a table is written (every field defaults to a clean, ordinary CSV)."""

    encoding: str = "utf-8"
    bom: bool = False
    delimiter: str = ","
    quotechar: str | None = '"'
    quote_all: bool = False
    escapechar: str | None = None
    doublequote: bool = True
    padding: bool = False
    line_ending: str | Sequence[str] = "\n"
    header: bool = True
    extra_header_rows: tuple[tuple[str, ...], ...] = ()
    preamble: tuple[str, ...] = ()
    trailer: tuple[str, ...] = ()
    final_newline: bool = True
    extra_final_newline: bool = False
    blank_after: tuple[int, ...] = ()  # blank line after these data rows (0-based)
    ragged: tuple[tuple[int, int], ...] = ()  # (data row, +n / -n fields)
    stray_quote: tuple[int, int] | None = None  # (data row, column): cell gets a leading '"'
    second_table: Table | None = None


@dataclass(frozen=True)
class Case:
    """One polluted file and what a perfect detector and reader make of it."""

    name: str
    category: str
    data: bytes
    headers: tuple[str, ...] | None
    rows: tuple[tuple[str, ...], ...]
    expect: dict[str, Any] = field(default_factory=dict)
    width: int = 0  # the clean table's width
    #: The file must be refused with a reason containing this text (then headers/rows are empty).
    refused: str | None = None

    @property
    def table_rows(self) -> list[list[str]]:
        return [list(r) for r in self.rows]


def _quote(cell: str, style: Style, force: bool) -> str:
    q = style.quotechar
    d = style.delimiter
    special = d in cell or "\n" in cell or "\r" in cell
    if q is None:
        if style.escapechar:
            out = cell.replace(style.escapechar, style.escapechar * 2)
            for ch in (d, "\n", "\r"):
                out = out.replace(ch, style.escapechar + ch)
            return out
        if special:
            raise ValueError(f"cell {cell!r} needs quoting but the style has no quote character")
        return cell
    needs = force or special or q in cell or (style.padding and cell[:1] == " ")
    if style.escapechar and style.escapechar in cell:
        needs = True
    if cell[:1] in ('"', "'"):
        needs = True
    if not needs:
        return cell
    inner = cell
    if style.escapechar:
        inner = inner.replace(style.escapechar, style.escapechar * 2)
    inner = (
        inner.replace(q, (style.escapechar or q) + q) if (style.escapechar or style.doublequote) else inner
    )
    return q + inner + q


def _render_row(cells: Sequence[str], style: Style, *, raw_cells: frozenset[int] = frozenset()) -> str:
    sep = style.delimiter + (" " if style.padding else "")
    parts = [c if i in raw_cells else _quote(c, style, style.quote_all) for i, c in enumerate(cells)]
    return sep.join(parts)


def write(
    table: Table, style: Style, *, name: str, category: str, expect: dict[str, Any] | None = None
) -> Case:
    """Render `table` in `style`; the Case holds the cells a reader must return."""
    lines: list[str] = []
    lines.extend(style.preamble)
    headers: tuple[str, ...] | None = None
    if style.header:
        for extra in style.extra_header_rows:
            lines.append(_render_row(extra, style))
        lines.append(_render_row(table.header, style))
        if style.extra_header_rows:
            rows_for_names = [*style.extra_header_rows, table.header]
            headers = tuple(
                " ".join(r[j].strip() for r in rows_for_names if r[j].strip()) for j in range(table.width)
            )
        else:
            headers = table.header
    truth: list[tuple[str, ...]] = []
    ragged = dict(style.ragged)
    for i, row in enumerate(table.rows):
        cells = list(row)
        raw: set[int] = set()
        if style.stray_quote is not None and style.stray_quote[0] == i:
            column = style.stray_quote[1]
            cells[column] = '"' + cells[column]
            raw.add(column)
        change = ragged.get(i, 0)
        if change > 0:
            cells.extend(f"extra{k}" for k in range(change))
        elif change < 0:
            cells = cells[:change]
        truth.append(tuple(cells))
        lines.append(_render_row(cells, style, raw_cells=frozenset(raw)))
        if i in style.blank_after:
            lines.append("")
    if style.second_table is not None:
        other = style.second_table
        lines.append("")
        lines.append(_render_row(other.header, style))
        truth.append(other.header)
        for row in other.rows:
            lines.append(_render_row(row, style))
            truth.append(row)
    # A trailer line as wide as the table (``Total,123`` under ``key,value``) whose numbers are
    # not the column sums is not unmistakable: it is a data row (issue 16, item 9).
    trailer = tuple(t for t in style.trailer if len(t.split(style.delimiter)) != table.width)
    for line in style.trailer:
        lines.append(line)
        if line not in trailer:
            truth.append(tuple(line.split(style.delimiter)))

    endings = [style.line_ending] if isinstance(style.line_ending, str) else list(style.line_ending)
    text_parts = []
    for n, line in enumerate(lines):
        text_parts.append(line)
        if n < len(lines) - 1 or style.final_newline:
            text_parts.append(endings[n % len(endings)])
    if style.extra_final_newline:
        text_parts.append(endings[0])
    text = "".join(text_parts)
    data = text.encode(style.encoding)
    if style.bom:
        data = {"utf-8": b"\xef\xbb\xbf", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[
            style.encoding
        ] + data

    expected: dict[str, Any] = {
        "delimiter": style.delimiter,
        "header_rows": (len(style.extra_header_rows) + 1) if style.header else 0,
        "skip_rows": len(style.preamble),
        "trailer_rows": len(trailer),
    }
    if style.quotechar == "'" or style.stray_quote is not None:
        expected["quotechar"] = style.quotechar if style.stray_quote is None else None
    if style.escapechar and any(style.escapechar + (style.quotechar or "") in line for line in lines):
        expected["escapechar"] = style.escapechar
    if isinstance(style.line_ending, str):
        expected["line_terminator"] = style.line_ending
    else:
        expected["line_terminator"] = "mixed"
    expected.update(expect or {})
    if style.second_table is not None:
        # Two tables, each with its own header: refused with both blocks named (issue 16, item 5),
        # never read as one table with the second header among the rows.
        return Case(name, category, data, None, (), expected, table.width, refused="stacked tables")
    return Case(name, category, data, headers, tuple(truth), expected, table.width)


# --------------------------------------------------------------------------- pollutions


def _case(table: Table, category: str, label: str, style: Style, **expect: Any) -> Case:
    return write(table, style, name=f"{table.name}/{category}/{label}", category=category, expect=expect)


def encoding_cases() -> Iterator[Case]:
    yield _case(people(), "encoding", "utf-8", Style(), encoding="utf-8", bom=False)
    yield _case(western(), "encoding", "utf-8", Style(), encoding="utf-8", bom=False)
    yield _case(western(), "encoding", "utf-8-bom", Style(bom=True), encoding="utf-8-sig", bom=True)
    yield _case(
        western(), "encoding", "utf-16-le", Style(encoding="utf-16-le", bom=True), encoding="utf-16-le"
    )
    yield _case(
        western(), "encoding", "utf-16-be", Style(encoding="utf-16-be", bom=True), encoding="utf-16-be"
    )
    yield _case(western(), "encoding", "cp1252", Style(encoding="cp1252"), encoding="cp1252")
    yield _case(latin(), "encoding", "latin-1", Style(encoding="latin-1"), encoding=("cp1252", "latin-1"))
    yield _case(
        japanese(), "encoding", "shift-jis", Style(encoding="shift_jis"), encoding=("cp932", "shift_jis")
    )
    yield _case(chinese(), "encoding", "gb18030", Style(encoding="gb18030"), encoding="gb18030")


def delimiter_cases(tables: Sequence[Table]) -> Iterator[Case]:
    for table in tables:
        for label, delimiter in (("comma", ","), ("semicolon", ";"), ("tab", "\t"), ("pipe", "|")):
            yield _case(table, "delimiter", label, Style(delimiter=delimiter))
        if table.name != "tricky":
            yield _case(table, "delimiter", "colon", Style(delimiter=":"))
        yield _case(table, "delimiter", "padded", Style(padding=True))
    yield _case(single(), "delimiter", "single-column", Style(), delimiter=None)


def quoting_cases(tables: Sequence[Table]) -> Iterator[Case]:
    for table in tables:
        yield _case(table, "quoting", "all-double", Style(quote_all=True))
        yield _case(table, "quoting", "single-quotes", Style(quotechar="'", quote_all=True))
        yield _case(table, "quoting", "backslash", Style(escapechar="\\", doublequote=False, quote_all=True))
        yield _case(table, "quoting", "minimal", Style())


def stray_quote_cases(table: Table, rows: Sequence[int] | None = None) -> Iterator[Case]:
    """One cell starting with an unbalanced quote, at every (row, column) given."""
    for r in rows if rows is not None else range(len(table.rows)):
        for c in range(table.width):
            yield _case(table, "quoting", f"stray-quote-r{r}c{c}", Style(quotechar=None, stray_quote=(r, c)))


def line_ending_cases(tables: Sequence[Table]) -> Iterator[Case]:
    for table in tables:
        yield _case(table, "line endings", "lf", Style(line_ending="\n"))
        yield _case(table, "line endings", "crlf", Style(line_ending="\r\n"))
        yield _case(table, "line endings", "cr", Style(line_ending="\r"))
        yield _case(table, "line endings", "mixed", Style(line_ending=("\n", "\r\n", "\n", "\r")))
        yield _case(table, "line endings", "no-final-newline", Style(final_newline=False))
        yield _case(table, "line endings", "double-final-newline", Style(extra_final_newline=True))
        yield _case(table, "line endings", "blank-lines", Style(blank_after=(0, 3, 4)))


PREAMBLES = (
    ("Sales report",),
    ("Sales report", "Generated 2024-01-31", ""),
    ("# exported by tool v2", "# do not edit", "", ""),
)
TRAILERS = (("Total,123",), ("EOF",), ("Record count: 20",), ("Total rows", "EOF"))


def structure_cases(tables: Sequence[Table]) -> Iterator[Case]:
    for table in tables:
        yield _case(table, "structure", "no-header", Style(header=False))
        for n, preamble in enumerate(PREAMBLES):
            yield _case(table, "structure", f"preamble-{n}", Style(preamble=preamble))
        for n, trailer in enumerate(TRAILERS):
            yield _case(table, "structure", f"trailer-{n}", Style(trailer=trailer))
        if table.width >= 2:
            groups = tuple("Group A" if j < table.width // 2 else "" for j in range(table.width))
            units = tuple(f"(unit {j})" for j in range(table.width))
            yield _case(table, "structure", "two-header-rows", Style(extra_header_rows=(units,)))
            yield _case(table, "structure", "three-header-rows", Style(extra_header_rows=(groups, units)))


def ragged_cases(table: Table, rows: Sequence[int] | None = None) -> Iterator[Case]:
    for r in rows if rows is not None else range(len(table.rows)):
        yield _case(table, "ragged", f"short-r{r}", Style(ragged=((r, -1),)))
        yield _case(table, "ragged", f"long-r{r}", Style(ragged=((r, 1),)))


def truncated(table: Table, rows: int) -> Table:
    """The table with only its first `rows` rows."""
    return replace(table, rows=table.rows[:rows])


def with_header(table: Table, header: Sequence[str]) -> Table:
    """The table under another header (e.g. with blank or duplicate names)."""
    return replace(table, name=f"{table.name}-header", header=tuple(header))


def blank_line_cases(table: Table, rows: Sequence[int] | None = None) -> Iterator[Case]:
    """A blank line after each given data row."""
    for r in rows if rows is not None else range(len(table.rows)):
        yield _case(table, "line endings", f"blank-after-r{r}", Style(blank_after=(r,)))


def edge_cases(table: Table) -> Iterator[Case]:
    """Header-only and one-row files, and a second table below the first."""
    yield _case(truncated(table, 0), "structure", "header-only", Style())
    yield _case(truncated(table, 1), "structure", "one-row", Style())
    other = Table("other", ("x", "y"), (("1", "2"), ("3", "4")))
    yield _case(table, "structure", "second-table", Style(second_table=other))
