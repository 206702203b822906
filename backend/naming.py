"""File name -> table name, header cells -> column names: normalised, unique, safe, bounded.

Rules (shared by tables and columns): transliterate to ASCII, lower-case, every run of
characters outside ``[a-z0-9]`` becomes one ``_``, leading/trailing ``_`` are trimmed, a leading
digit gets a prefix, and a name longer than the dialect's limit is cut and given a stable
8-hex-digit hash of the original so two long names that share a prefix stay distinct.
Names that differ in the file but clash after normalising (``Temp (°C)`` and ``Temp [°C]``)
are never merged: the later one gets the next free ``_2``, ``_3`` suffix, as identical cells
do, and the original texts stay in the detection for `export` (issue 16, item 4).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from pathlib import PurePath

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


def table_name_from_file(path: str | PurePath, max_length: int = 128) -> str:
    """Derive the target table's name from a file name (``Countries_2024-01-31.csv`` -> ``countries``)."""
    stem = PurePath(path).name
    # Drop every extension-like suffix we accept (e.g. "x.csv", "x.csv.txt").
    stem = re.sub(r"(\.(csv|txt|tsv|psv|dat))+$", "", stem, flags=re.IGNORECASE)
    if "." in stem:
        stem = stem.rsplit(".", 1)[0] or stem
    without_dates = _DATE_STAMP.sub("_", stem)
    name = normalize_identifier(without_dates) or normalize_identifier(stem) or "table"
    if name[0].isdigit():
        name = "t_" + name
    name = shorten(name, stem, max_length)
    if name in RESERVED_TABLES:
        name = shorten(name + "_data", stem, max_length)
    return name


def normalize_columns(headers: Sequence[str], max_length: int = 63) -> tuple[str, ...]:
    """Turn header cells into unique, safe column names.

    Blank cells become ``column_N`` (N is the 1-based position); identical header texts get
    ``_2``, ``_3`` suffixes; a different text that normalises to a name already taken gets the
    next free suffix (``rate``, ``rate_2``, ``rate_3``); see `name_clashes` for reporting them.
    """
    names: list[str] = []
    origin: dict[str, str] = {}
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
