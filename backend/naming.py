"""File name -> table name, header cells -> column names: normalised, unique, safe, bounded.

Rules (shared by tables and columns): transliterate to ASCII, lower-case, every run of
characters outside ``[a-z0-9]`` becomes one ``_``, leading/trailing ``_`` are trimmed, a leading
digit gets a prefix, and a name longer than the dialect's limit is cut and given a stable
8-hex-digit hash of the original so two long names that share a prefix stay distinct.
Names that differ in the file but clash after normalising (``Temp (°C)`` and ``Temp [°C]``)
are never merged: the later one gets the next free ``_2``, ``_3`` suffix, as identical cells
do, and the original texts stay in the detection for `export` (issue 16, item 4). A column name
the database reserves for itself (PostgreSQL's system columns ``xmin``, ``ctid``, ...; each
adapter's `reserved_column_names`) is renamed the same way, as if that column came first.

Table names from any script (issue 14, item 5): a name whose letters decompose to ASCII keeps
the rule above (``Données.csv`` -> ``donnees``). Letters that do not (``ß``, ``Ł``, any
non-Latin script) are transliterated with anyascii (``Straße`` -> ``strasse``); when some come
from outside the Latin script, whose transliteration is lossy (``国家`` and ``國家`` both read
``GuoJia``), the name also gets ``_`` + 8 hex digits of a SHA-256 of the name without its date
stamps (case-folded, punctuation ignored): ``国家_2024-01-31.csv`` -> ``guojia_<hash>``, the same
table for every date. A name that transliterates to nothing (``★.csv``, ``---.csv``) is ``t_<hash>``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Sequence
from pathlib import PurePath

from anyascii import anyascii

#: Tables the product owns in the data schema; a file may not be named after them.
RESERVED_TABLES = frozenset({"file_monitor_tracking", "file_monitor_events", "reference_data_cfg"})
#: Metadata columns added to every loaded table; user columns never start with "_".
METADATA_COLUMNS = ("_load_id", "_row_number", "_loaded_at", "_load_type", "_version")

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_TIME = r"(?:[T _-]?\d{2}[:_-]?\d{2}(?:[:_-]?\d{2})?)?"
_DATE_STAMP = re.compile(
    r"(?<![0-9])(?:"
    r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])" + _TIME + r"|"  # YYYYMMDD[HHMMSS]
    r"(?:19|20)\d{2}([-_.])(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])"
    + _TIME  # YYYY-MM-DD
    + r")(?![0-9])"
)


def date_stamp(name: str) -> str | None:
    """The first date stamp in a file name as digits (``x_2024-01-31.csv`` -> ``20240131``), or None.

    The same stamps `table_name_from_file` removes; a time after the date is kept
    (``20240131_0830`` -> ``202401310830``), so stamps of one day still sort by time.
    """
    match = _DATE_STAMP.search(PurePath(name).name)
    return re.sub(r"\D", "", match.group(0)) if match else None


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def normalize_identifier(text: str) -> str:
    """The normalised form of one name, possibly empty (the caller chooses a fallback)."""
    return _NON_ALNUM.sub("_", _ascii(text).lower()).strip("_")


def shorten(name: str, original: str, max_length: int) -> str:
    """Cut `name` to `max_length`, keeping it unique with a stable hash of `original`."""
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(original.encode("utf-8")).hexdigest()[:8]
    return name[: max_length - 9].rstrip("_") + "_" + digest


_COMPRESSION_SUFFIX = r"(?<=.)\.(gz|gzip|bz2|xz|zst|zstd|zip)$"
_FORMAT_SUFFIXES = r"(?<=.)(\.(csv|txt|tsv|tab|psv|dat|xlsx|xlsm|xls|json|ndjson|jsonl|parquet|pq))+$"


def table_name_from_file(path: str | PurePath, max_length: int = 128) -> str:
    """Derive the target table's name from a file name (``Countries_2024-01-31.csv`` -> ``countries``).

    Stable (a pure function of the name) and distinct for names in other scripts; see the
    module docstring for the rules.
    """
    stem = PurePath(path).name
    # Drop a compression suffix, then every format suffix we accept ("x.csv", "x.csv.txt",
    # "countries.csv.gz" and "x.xlsx" alike, issue 17).
    stem = re.sub(_COMPRESSION_SUFFIX, "", stem, flags=re.IGNORECASE) or stem
    stem = re.sub(_FORMAT_SUFFIXES, "", stem, flags=re.IGNORECASE)
    if "." in stem:
        stem = stem.rsplit(".", 1)[0] or stem
    without_dates = _DATE_STAMP.sub("_", stem)
    source = without_dates if any(c.isalnum() for c in without_dates) else stem
    name = normalize_identifier(source)
    if name and _spelled_in_ascii(source):
        if name[0].isdigit():
            name = "t_" + name
        name = shorten(name, stem, max_length)
    else:
        name = _transliterated(source, max_length)
    if name in RESERVED_TABLES:
        name = shorten(name + "_data", stem, max_length)
    return name


def _spelled_in_ascii(text: str) -> bool:
    """Whether every letter and digit of `text` decomposes to ASCII (``é`` does, ``ß`` and ``国`` do not)."""
    return all(_ascii(c) for c in text if c.isalnum())


def _transliterated(source: str, max_length: int) -> str:
    """A name for `source` spelled with anyascii, tagged with a hash when the script is not Latin."""
    key = re.sub(r"[\W_]+", "_", unicodedata.normalize("NFC", source).casefold()).strip("_")
    tag = hashlib.sha256((key or source).encode("utf-8")).hexdigest()[:8]
    spelled = normalize_identifier(anyascii(source))
    non_latin = any(
        c.isalpha() and not c.isascii() and "LATIN" not in unicodedata.name(c, "") for c in source
    )
    if not spelled:
        return "t_" + tag
    if spelled[0].isdigit():
        spelled = "t_" + spelled
    if not non_latin:
        return shorten(spelled, key, max_length)
    return spelled[: max_length - len(tag) - 1].rstrip("_") + "_" + tag


def normalize_columns(
    headers: Sequence[str], max_length: int = 63, reserved: Collection[str] = ()
) -> tuple[str, ...]:
    """Turn header cells into unique, safe column names.

    Blank cells become ``column_N`` (N is the 1-based position); identical header texts get
    ``_2``, ``_3`` suffixes; a different text that normalises to a name already taken gets the
    next free suffix (``rate``, ``rate_2``, ``rate_3``); see `name_clashes` for reporting them.
    A name in `reserved` (the database's own columns, ``xmin`` on PostgreSQL) counts as taken:
    ``xmin`` becomes ``xmin_2``.
    """
    names: list[str] = []
    origin: dict[str, str] = {name: "" for name in reserved}
    seen_text: dict[str, int] = {}
    for position, raw in enumerate(headers, start=1):
        text = raw.strip()
        base = normalize_identifier(text)
        if not base:
            base = f"column_{position}"
        elif base[0].isdigit():
            base = "c_" + base
        base = shorten(base, text or base, max_length)
        key = text if text else f"\0blank{position}"
        count = seen_text.get(key, 0) + 1
        seen_text[key] = count
        name = base if count == 1 else shorten(f"{base}_{count}", f"{text}\0{count}", max_length)
        while name in origin:
            count += 1
            name = shorten(f"{base}_{count}", f"{text}\0{count}", max_length)
        origin[name] = raw
        names.append(name)
    return tuple(names)


def name_clashes(headers: Sequence[str], columns: Sequence[str]) -> tuple[tuple[str, str, str], ...]:
    """(header, column, the earlier header it clashed with) for each suffixed clashing name.

    Identical cells (``id``, ``id``) are not listed: their suffix is expected.
    """
    out = []
    by_base: dict[str, str] = {}
    for raw, column in zip(headers, columns, strict=False):
        base = normalize_identifier(raw.strip())
        earlier = by_base.get(base) if base else None
        if earlier is not None and earlier.strip() != raw.strip():
            out.append((raw, column, earlier))
        elif base and base not in by_base:
            by_base[base] = raw
    return tuple(out)
