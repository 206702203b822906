"""Deterministic generator of realistic reference-data CSV files for the benchmarks.

Twelve columns mix integer ids, decimals, ISO dates and datetimes, short codes, names and
descriptions with quoted delimiters and doubled quotes, a boolean, empty cells and non-ASCII text.
Every character is representable in cp1252, so the same rows can be written as utf-8,
utf-8-sig or cp1252. The rows depend only on the seed, never on the target size: a 10 MB file
is a byte-for-byte prefix (in rows) of the 100 MB file of the same seed.

Files are cached in a temp folder (``$BENCH_DATA_DIR`` or ``<tmp>/refdata-bench/data``), never
in the repository, with a ``.meta.json`` sidecar holding the row count the rates are computed
from. Usage::

    python -m bench.generate --size 100MB [--delimiter ';'] [--encoding cp1252] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

#: Bump when the rows change, so cached files of an older generator are not reused.
GENERATOR_VERSION = 2
ROWS_PER_WRITE = 20_000
ENCODINGS = ("utf-8", "utf-8-sig", "cp1252")
DELIMITERS = {",": "comma", ";": "semicolon", "|": "pipe", "\t": "tab"}
#: Spellings accepted on the command line for a delimiter that is awkward to type.
DELIMITER_ALIASES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}

#: Column names and the PostgreSQL type each one holds (used for the typed \copy baseline).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "bigint"),
    ("code", "text"),
    ("name", "text"),
    ("description", "text"),
    ("category", "text"),
    ("country", "text"),
    ("amount", "numeric(14,2)"),
    ("rate", "numeric(10,4)"),
    ("valid_from", "date"),
    ("updated_at", "timestamp"),
    ("active", "boolean"),
    ("notes", "text"),
)

_FIRST = (
    "Anna", "José", "Zoë", "François", "Søren", "Björn", "Chloé", "Lucía", "Ángel", "Mårten",
    "Noémie", "Jürgen", "Inês", "Dmitri", "Siobhán", "Ölsen", "Renée", "Tomás", "Mia", "Olaf",
    "Håkon", "Ægir", "Çelik", "Ñuño", "Beyoncé", "Grace", "Kofi", "Yuki", "Priya", "Ole",
)  # fmt: skip
_LAST = (
    "Müller", "García", "O'Brien", "Ødegård", "Dubois", "Nuñez", "Schröder", "Smith", "Kowalski",
    "Andersson", "Rossi", "Fernández", "Jäger", "Novák", "Lefèvre", "Þórsson", "de la Cruz",
    "Van Dijk", "Nakamura", "Okafor", "Brontë", "Weiß", "Côté", "Ibáñez", "Costa",
)  # fmt: skip
_ITEMS = (
    "Widget", "Bracket", "Valve", "Sensor", "Cable", "Panel", "Filter", "Pump", "Crème brûlée",
    "Gasket", "Relay", "Façade tile", "Hinge", "Bolt", "Spring",
)  # fmt: skip
_QUALIFIERS = (
    'big, "XL"', "small, blue", 'size 3/4"', "10-pack, boxed", "spare", 'rated "IP67"', "12V; DC",
    "naïve, v2", "über-fast", "Ø 20 mm", "export | EU", "grade A", "old stock", "1,5 kg", "café",
)  # fmt: skip
_CATEGORIES = (
    "RETAIL", "WHOLESALE", "EXPORT", "INTERNAL", "ONLINE", "PARTNER", "GOV", "EDU", "MISC", "B2B",
)  # fmt: skip
_COUNTRIES = (
    "DE", "FR", "GB", "US", "ES", "IT", "NL", "SE", "NO", "DK", "PL", "CZ", "PT", "IE", "CH", "AT",
)  # fmt: skip
_NOTES = (
    "Größe geändert — siehe Anhang", "prix en €, TVA incluse", 'Kunde sagt "dringend"',
    "revisión pendiente", "see ticket #4521; priority", "ÅÄÖ ok", "«special» handling",
    "Line A, line B", "½ price until 31/12", "déjà vu",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Spec:
    """What a generated file looks like; together with GENERATOR_VERSION it names the cached file."""

    size_bytes: int
    delimiter: str = ","
    encoding: str = "utf-8"
    seed: int = 1
    line_terminator: str = "\n"

    @property
    def file_name(self) -> str:
        ending = "crlf" if self.line_terminator == "\r\n" else "lf"
        return (
            f"refdata_{format_size(self.size_bytes)}_{DELIMITERS[self.delimiter]}_{self.encoding}"
            f"_{ending}_s{self.seed}_v{GENERATOR_VERSION}.csv"
        )


@dataclass(frozen=True, slots=True)
class Generated:
    """A generated file and the facts the benchmark rates are computed from."""

    path: Path
    rows: int
    bytes: int
    spec: Spec

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(name for name, _ in COLUMNS)


def parse_size(text: str) -> int:
    """``10MB``, ``1GB``, ``500kB`` or a plain byte count -> bytes (powers of 1000, like disk sizes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?\s*", text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 10MB, 1GB)")
    factor = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)


def format_size(size_bytes: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes}B"


def data_dir() -> Path:
    """Where generated files are cached (outside the repository)."""
    env = os.environ.get("BENCH_DATA_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "refdata-bench" / "data"


def _quote(value: str, delimiter: str) -> str:
    if delimiter in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def iter_lines(spec: Spec) -> Iterator[str]:
    """The header line, then data lines forever; the same seed always gives the same lines."""
    rng = random.Random(spec.seed)
    d, end = spec.delimiter, spec.line_terminator
    names = [_quote(f"{f} {n}", d) for f in _FIRST for n in _LAST]
    descriptions = [_quote(f"{item}, {q}", d) for item in _ITEMS for q in _QUALIFIERS]
    notes = [_quote(n, d) for n in _NOTES]
    start = date(2015, 1, 1)
    dates = [(start + timedelta(days=i)).isoformat() for i in range(3650)]
    times = [
        f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in ((i % 24, (i * 7) % 60, (i * 13) % 60) for i in range(997))
    ]
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    yield d.join(name for name, _ in COLUMNS) + end
    rand, randrange, choice = rng.random, rng.randrange, rng.choice
    row_id = 0
    while True:
        row_id += 1
        code = f"{choice(letters)}{choice(letters)}-{randrange(100000):05d}"
        category = "" if rand() < 0.05 else choice(_CATEGORIES)
        cents = randrange(-50_000, 2_000_000)
        sign = "-" if cents < 0 else ""
        cents = abs(cents)
        amount = f"{sign}{cents // 100}.{cents % 100:02d}"
        rate = "" if rand() < 0.03 else f"{randrange(100000) / 10000:.4f}"
        updated = f"{choice(dates)}T{choice(times)}"
        active = "true" if rand() < 0.8 else "false"
        note = choice(notes) if rand() < 0.2 else ""
        yield (
            f"{row_id}{d}{code}{d}{choice(names)}{d}{choice(descriptions)}{d}{category}{d}"
            f"{choice(_COUNTRIES)}{d}{amount}{d}{rate}{d}{choice(dates)}{d}{updated}{d}{active}{d}{note}{end}"
        )


def generate(spec: Spec, directory: Path | None = None, *, force: bool = False) -> Generated:
    """Write (or reuse) the file described by `spec`; stops at the first full line past the size.

    Args:
        spec: size, delimiter, encoding, seed and line terminator.
        directory: cache folder (default `data_dir()`).
        force: rewrite even when a matching cached file exists.
    """
    if spec.delimiter not in DELIMITERS:
        raise ValueError(f"delimiter must be one of {sorted(DELIMITERS)}")
    if spec.encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}")
    folder = directory or data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.file_name
    meta_path = path.with_name(path.name + ".meta.json")
    if not force and path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == path.stat().st_size and meta.get("spec") == asdict(spec):
            return Generated(path, int(meta["rows"]), int(meta["bytes"]), spec)
    partial = path.with_name(path.name + ".part")
    rows = 0
    lines = iter_lines(spec)
    # newline="" writes the line terminator exactly as given; utf-8-sig adds the BOM itself.
    with partial.open("w", encoding=spec.encoding, newline="") as out:
        out.write(next(lines))
        header_bytes = written = out.tell()
        while written < spec.size_bytes:
            # Write most of what is left in one go, then smaller and smaller pieces, so the file
            # ends on the first full line past the size without a write (and tell) per line.
            per_row = (written - header_bytes) / rows if rows else 150.0
            count = max(1, min(ROWS_PER_WRITE, int((spec.size_bytes - written) / per_row * 0.9)))
            out.write("".join(next(lines) for _ in range(count)))
            rows += count
            written = out.tell()
    partial.replace(path)
    size = path.stat().st_size
    meta_path.write_text(json.dumps({"rows": rows, "bytes": size, "spec": asdict(spec)}, indent=2))
    return Generated(path, rows, size, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    p.add_argument("--size", default="10MB", help="target size, e.g. 10MB, 100MB, 1GB")
    p.add_argument("--delimiter", default=",", help="field delimiter: , ; | or tab")
    p.add_argument("--encoding", default="utf-8", choices=ENCODINGS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--crlf", action="store_true", help="end lines with CRLF instead of LF")
    p.add_argument("--dir", type=Path, default=None, help="output folder (default: the temp cache)")
    p.add_argument("--force", action="store_true", help="rewrite even when cached")
    args = p.parse_args(argv)
    spec = Spec(
        size_bytes=parse_size(args.size),
        delimiter=DELIMITER_ALIASES.get(args.delimiter, args.delimiter),
        encoding=args.encoding,
        seed=args.seed,
        line_terminator="\r\n" if args.crlf else "\n",
    )
    made = generate(spec, args.dir, force=args.force)
    print(json.dumps({"path": str(made.path), "rows": made.rows, "bytes": made.bytes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
