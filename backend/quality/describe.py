"""The load profile as JSON-ready data: what `profile.ProfileObserver` saw, described per column,
and the structure fingerprint that tells one load's columns from the previous load's."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.detection.types import value_kind
from backend.models import ColumnKind, ColumnType
from backend.quality.profile import (
    LOW_CARDINALITY,
    NUMERIC_KINDS,
    PATTERN_MAX_LENGTH,
    PATTERN_SHARE,
    SHAPES,
    TOP_VALUES,
    VALUE_CHARS,
    ColumnStats,
    ProfileObserver,
)
from backend.quality.sensitive import flag_columns


def build_profile(
    observer: ProfileObserver,
    columns: Sequence[str],
    column_types: Sequence[ColumnType],
    *,
    empty_as_null: bool = True,
    detect_sensitive: bool = True,
    declared_sensitive: Sequence[str] = (),
    previous_fingerprint: str | None = None,
    empty_counts: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The profile of everything `observer` saw, as compact JSON-ready data.

    Args:
        empty_counts: exact empty cells per column, counted elsewhere (required when the
            observer was made with ``count_empty=False``).
        declared_sensitive: columns the table's policy names as sensitive; treated like flagged
            ones (kind ``declared`` unless the detector found one).
    """
    started = time.perf_counter()
    observer.flush()  # the last partial batch
    if empty_counts is not None:
        for stats, empty in zip(observer.columns, empty_counts, strict=True):
            stats.empty = empty
    elif not observer.counts_empty:
        raise ValueError("the observer did not count empty cells: pass empty_counts")
    samples = [(name, stats.sample) for name, stats in zip(columns, observer.columns, strict=True)]
    flags = flag_columns(samples) if detect_sensitive else {}
    for name in declared_sensitive:
        if name in columns:
            flags.setdefault(name, "declared")
    sampled = observer.sampled
    described = [
        _describe(name, stats, column_type, empty_as_null, flags.get(name), sampled, observer.rows)
        for name, stats, column_type in zip(columns, observer.columns, column_types, strict=True)
    ]
    current = fingerprint(tuple(columns), tuple(column_types))
    sample = {"sampled_rows": observer.sampled_rows} if sampled else {}
    return {
        "rows": observer.rows,
        **sample,
        "fingerprint": current,
        "previous_fingerprint": previous_fingerprint,
        "structure_changed": previous_fingerprint is not None and previous_fingerprint != current,
        "columns": described,
        "sensitive": flags,
        "profile_ms": round(1000 * (observer.seconds + time.perf_counter() - started), 1),
    }


def _describe(
    name: str,
    stats: ColumnStats,
    column_type: ColumnType,
    empty_as_null: bool,
    sensitive: str | None,
    sampled: bool = False,
    rows: int = 0,
) -> dict[str, Any]:
    """One column's entry; `sampled`: its statistics come from a sample of the file's `rows`."""
    kind = column_type.kind
    distinct, approximate = stats.distinct()
    out: dict[str, Any] = {"name": name, "type": kind.value}
    if sampled:
        out["from_sample"] = True
        approximate = True
        if stats.present and distinct >= 0.95 * stats.present:
            # Nearly every sampled value was new (an id-like column): the whole file is likely
            # the same, so scale to its non-empty rows rather than report the sample's count.
            distinct = round(distinct / stats.present * max(stats.present, rows - stats.empty))
    looks = _looks_like(stats.sample) if kind is ColumnKind.TEXT else None
    if looks is not None:
        out["looks_like"] = looks.value
    out["nulls"] = stats.empty if empty_as_null else 0
    out["distinct"] = distinct
    if approximate:
        out["distinct_approximate"] = True
    out["max_length"] = column_type.length
    if sensitive is not None:
        out["sensitive"] = sensitive
        return out  # no values of personal or payment data in the tracking table
    numeric = stats.numeric and stats.n > 0 and (kind in NUMERIC_KINDS or looks in NUMERIC_KINDS)
    if numeric:
        whole = kind in (ColumnKind.INTEGER, ColumnKind.BIGINT) or looks in (
            ColumnKind.INTEGER,
            ColumnKind.BIGINT,
        )
        out["min"] = _number(stats.num_min, whole)
        out["max"] = _number(stats.num_max, whole)
        mean = stats.s1 / stats.n
        out["mean"] = _round((stats.shift or 0.0) + mean)
        if stats.n > 1:
            variance = max(0.0, (stats.s2 - stats.s1 * mean) / (stats.n - 1))
            out["stddev"] = _round(math.sqrt(variance))
    elif stats.min_text is not None and _orderable(column_type):
        out["min"] = stats.min_text[:VALUE_CHARS]
        out["max"] = stats.max_text[:VALUE_CHARS] if stats.max_text is not None else None
    if stats.counter is not None and stats.counter and distinct <= LOW_CARDINALITY:
        out["top"] = [[v[:VALUE_CHARS], n] for v, n in stats.counter.most_common(TOP_VALUES)]
    pattern = _pattern(stats.sample, column_type.length)
    if pattern is not None:
        out["pattern"] = pattern
    return out


def _orderable(column_type: ColumnType) -> bool:
    """Whether text order is the column's order (year-first dates are; day-first are not)."""
    if column_type.kind in (ColumnKind.DATE, ColumnKind.DATETIME):
        return (column_type.date_format or "").startswith("%Y")
    return column_type.kind is not ColumnKind.BOOLEAN


def _looks_like(sample: Sequence[str]) -> ColumnKind | None:
    """The kind a TEXT column's sampled values all share (None: plain text or nothing sampled)."""
    kinds = {value_kind(v) for v in sample[:1000]}
    kinds.discard(None)
    if not kinds or ColumnKind.TEXT in kinds:
        return None
    if kinds <= {ColumnKind.INTEGER}:
        return ColumnKind.INTEGER
    if kinds <= {ColumnKind.INTEGER, ColumnKind.DECIMAL}:
        return ColumnKind.DECIMAL
    return next(iter(kinds)) if len(kinds) == 1 else None


def _pattern(sample: Sequence[str], max_length: int) -> str | None:
    if not sample or max_length > PATTERN_MAX_LENGTH:
        return None
    shapes = Counter(v.translate(SHAPES) for v in sample)
    shape, count = shapes.most_common(1)[0]
    return shape if count >= PATTERN_SHARE * len(sample) else None


def _number(value: float, whole: bool) -> float | int:
    return int(value) if whole and value.is_integer() else _round(value)


def _round(value: float) -> float:
    return float(f"{value:.10g}")


def fingerprint(columns: tuple[str, ...], column_types: tuple[ColumnType, ...]) -> str:
    """Hash of the normalised column names and kinds: equal for files of the same structure."""
    text = "|".join(f"{c}:{t.kind.value}" for c, t in zip(columns, column_types, strict=True))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def previous_fingerprint(conn: Connection, db: Database, table: str) -> str | None:
    """The fingerprint of the table's last successful load, if it recorded one."""
    t = db.catalog.tracking
    value = conn.execute(
        sa.select(t.c.profile)
        .where(t.c.table_name == table, t.c.status == "loaded", t.c.profile.isnot(None))
        .order_by(t.c.id.desc())
        .limit(1)
    ).scalar()
    if not value:
        return None
    try:
        found = json.loads(value).get("fingerprint")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None
