"""Validation rules from the table's policy, evaluated over the whole staging table before publish.

SQL where the three dialects agree (one statement per rule, the database does the scan):
``not_null`` (one scan for all of them), ``unique`` (GROUP BY ... HAVING; for an append also
against the rows already in the table, comparing text renderings: exact for text and integer
keys), ``allowed`` (NOT IN, up to 500 values) and ``row_count``. A streamed Python scan of only
the columns concerned for the rules whose semantics must not depend on the database: ``type``
(the type inference's own rules), ``range`` (Decimal / ISO date comparison) and ``pattern``
(Python regular expressions, whole value), skipped when the profile or the inferred type already
proves the rule holds.

Empty cells count as missing for every rule: ``not_null`` refuses them, the others ignore them.
Each result lists the offending row count and the first offending row numbers (``_row_number``,
the data row's position in the file) with their values.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.detection.types import parse_value, value_kind
from backend.models import ColumnKind, ColumnType, LoadType
from backend.policies import Rule, Severity

#: Offending examples kept per rule.
EXAMPLES = 5
#: `allowed` lists longer than this are checked in Python (bound-parameter limits).
SQL_ALLOWED_MAX = 500
SCAN_BATCH_ROWS = 10000
_INT_RANGES = {ColumnKind.INTEGER: (-(2**31), 2**31 - 1), ColumnKind.BIGINT: (-(2**63), 2**63 - 1)}
#: Kinds whose values also satisfy a rule asking for the key's kind.
_SATISFIES = {
    ColumnKind.INTEGER: {ColumnKind.INTEGER},
    ColumnKind.BIGINT: {ColumnKind.INTEGER, ColumnKind.BIGINT},
    ColumnKind.DECIMAL: {ColumnKind.INTEGER, ColumnKind.BIGINT, ColumnKind.DECIMAL},
    ColumnKind.BOOLEAN: {ColumnKind.BOOLEAN},
    ColumnKind.DATE: {ColumnKind.DATE},
    ColumnKind.DATETIME: {ColumnKind.DATETIME},
}


@dataclass
class RuleResult:
    """The outcome of one rule."""

    rule: str
    kind: str
    severity: Severity
    passed: bool = True
    offending_rows: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    #: The columns the rule looks at (an example's single "value" belongs to the first).
    columns: tuple[str, ...] = ()

    @property
    def blocking(self) -> bool:
        return not self.passed and self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity.value,
            "passed": self.passed,
            "offending_rows": self.offending_rows,
        }
        if self.examples:
            out["examples"] = self.examples
        if self.message:
            out["message"] = self.message
        return out

    def describe(self) -> str:
        """``not_null(code): 2 rows (row 3 '', row 9 '')`` for messages."""
        text = f"{self.rule}: "
        text += self.message or f"{self.offending_rows} row{'s' if self.offending_rows != 1 else ''}"
        if self.examples:
            text += " (" + ", ".join(_example_text(e) for e in self.examples) + ")"
        return text


@dataclass(frozen=True)
class RuleContext:
    """What the rules need to know besides the staging table."""

    file_columns: tuple[str, ...]
    load_type: LoadType
    rows_staged: int
    column_types: dict[str, ColumnType]
    profile_columns: dict[str, dict[str, Any]]
    #: The table's rows other than this load's (None: no rule needs them, or no table yet).
    live: sa.FromClause | None


def evaluate_rules(
    conn: Connection, stage: sa.FromClause, rules: Sequence[Rule], ctx: RuleContext
) -> list[RuleResult]:
    """Evaluate `rules` against `stage`; returns one result per rule, in the policy's order."""
    results: dict[int, RuleResult] = {}
    scan: list[tuple[int, Rule]] = []
    not_null: list[tuple[int, Rule]] = []
    for i, rule in enumerate(rules):
        missing = [c for c in rule.columns if c not in ctx.file_columns]
        if missing and rule.kind != "required":
            results[i] = _fail(rule, 0, [], f"column {', '.join(missing)} is not in the file")
        elif rule.kind == "required":
            results[i] = _fail(rule, 0, [], f"file lacks {', '.join(missing)}") if missing else _pass(rule)
        elif rule.kind == "not_null":
            not_null.append((i, rule))
        elif rule.kind == "unique":
            results[i] = _unique(conn, stage, rule, ctx)
        elif rule.kind == "allowed" and len(rule.values) <= SQL_ALLOWED_MAX:
            results[i] = _allowed(conn, stage, rule)
        elif rule.kind == "row_count":
            results[i] = _row_count(conn, rule, ctx)
        elif _proven(rule, ctx):
            results[i] = _pass(rule)
        else:
            scan.append((i, rule))
    results.update(_not_null(conn, stage, not_null))
    results.update(_scan(conn, stage, scan, ctx))
    return [results[i] for i in range(len(rules))]


def _pass(rule: Rule) -> RuleResult:
    return RuleResult(rule.name, rule.kind, rule.severity, columns=rule.columns)


def _fail(rule: Rule, count: int, examples: list[dict[str, Any]], message: str = "") -> RuleResult:
    return RuleResult(rule.name, rule.kind, rule.severity, False, count, examples, message, rule.columns)


def _empty(column: Any) -> Any:
    return sa.or_(column.is_(None), column == "")


def _examples(
    conn: Connection, stage: sa.FromClause, where: Any, columns: Sequence[str]
) -> list[dict[str, Any]]:
    query = (
        sa.select(stage.c._row_number, *(stage.c[c] for c in columns))
        .where(where)
        .order_by(stage.c._row_number)
        .limit(EXAMPLES)
    )
    return [_example(int(r[0]), columns, r[1:]) for r in conn.execute(query)]


def _example(row: int, columns: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    if len(columns) == 1:
        return {"row": row, "value": values[0]}
    return {"row": row, "values": dict(zip(columns, values, strict=True))}


def _example_text(example: dict[str, Any]) -> str:
    if "row" not in example:  # an issue reported by a validation hook
        return str(example.get("issue_detail", example))[:200]
    value = example.get("value", example.get("values"))
    return f"row {example['row']} {value!r}"


def _not_null(conn: Connection, stage: sa.FromClause, rules: list[tuple[int, Rule]]) -> dict[int, RuleResult]:
    if not rules:
        return {}
    # One scan counts the empty cells of every not_null column at once.
    counts = conn.execute(
        sa.select(*(sa.func.sum(sa.case((_empty(stage.c[r.columns[0]]), 1), else_=0)) for _, r in rules))
    ).one()
    out: dict[int, RuleResult] = {}
    for (i, rule), count in zip(rules, counts, strict=True):
        column = rule.columns[0]
        if not count:
            out[i] = _pass(rule)
            continue
        out[i] = _fail(rule, int(count), _examples(conn, stage, _empty(stage.c[column]), [column]))
    return out


def _unique(conn: Connection, stage: sa.FromClause, rule: Rule, ctx: RuleContext) -> RuleResult:
    keys = [stage.c[c] for c in rule.columns]
    within = _unique_in_file(conn, stage, rule, ctx, keys)
    if within is not None or ctx.load_type is not LoadType.APPEND or ctx.live is None:
        return within or _pass(rule)
    live = ctx.live
    if any(c not in live.c for c in rule.columns):
        return _pass(rule)
    # Appended rows must not repeat a key already in the table.
    existing = (
        sa.select(*(sa.cast(live.c[c], sa.UnicodeText).label(c) for c in rule.columns))
        .distinct()
        .subquery("existing")
    )
    count, examples = _joined(conn, stage, existing, rule.columns)
    if not count:
        return _pass(rule)
    return _fail(rule, count, examples, f"{count} rows repeat a key already in the table")


def _unique_in_file(
    conn: Connection, stage: sa.FromClause, rule: Rule, ctx: RuleContext, keys: list[Any]
) -> RuleResult | None:
    if len(keys) == 1:
        profiled = ctx.profile_columns.get(rule.columns[0], {})
        distinct, nulls = profiled.get("distinct"), profiled.get("nulls")
        counted = isinstance(distinct, int) and isinstance(nulls, int)
        if (
            counted
            and not profiled.get("distinct_approximate")
            and distinct == ctx.rows_staged - (nulls or 0)
        ):
            return None  # the profile counted every value once: nothing to look up
    present = sa.and_(*(sa.not_(_empty(k)) for k in keys))
    dups = sa.select(*keys).where(present).group_by(*keys).having(sa.func.count() > 1).subquery("dups")
    count, examples = _joined(conn, stage, dups, rule.columns)
    return _fail(rule, count, examples) if count else None


def _joined(
    conn: Connection, stage: sa.FromClause, keys: sa.Subquery, columns: Sequence[str]
) -> tuple[int, list[dict[str, Any]]]:
    """Staged rows whose key is in `keys` (one row per key): their count and the first few."""
    on = sa.and_(*(keys.c[c] == stage.c[c] for c in columns))
    joined = stage.join(keys, on)
    count = int(conn.execute(sa.select(sa.func.count()).select_from(joined)).scalar_one())
    if not count:
        return 0, []
    query = (
        sa.select(stage.c._row_number, *(stage.c[c] for c in columns))
        .select_from(joined)
        .order_by(stage.c._row_number)
        .limit(EXAMPLES)
    )
    return count, [_example(int(r[0]), columns, r[1:]) for r in conn.execute(query)]


def _allowed(conn: Connection, stage: sa.FromClause, rule: Rule) -> RuleResult:
    column = stage.c[rule.columns[0]]
    where = sa.and_(sa.not_(_empty(column)), column.not_in(sorted(rule.values)))
    count = conn.execute(sa.select(sa.func.count()).select_from(stage).where(where)).scalar_one()
    if not count:
        return _pass(rule)
    return _fail(rule, int(count), _examples(conn, stage, where, rule.columns))


def _row_count(conn: Connection, rule: Rule, ctx: RuleContext) -> RuleResult:
    rows = ctx.rows_staged
    if rule.min_rows is not None and rows < rule.min_rows:
        return _fail(rule, 0, [], f"file has {rows} rows, fewer than the minimum of {rule.min_rows}")
    percent_rules = rule.min_percent_of_current is not None or rule.max_percent_of_current is not None
    # The share of the current rows guards a fullload only: an append adds to them.
    if not percent_rules or ctx.load_type is not LoadType.FULLLOAD or ctx.live is None:
        return _pass(rule)
    current = int(conn.execute(sa.select(sa.func.count()).select_from(ctx.live)).scalar_one())
    if current == 0:
        return _pass(rule)
    percent = round(100.0 * rows / current, 1)
    low, high = rule.min_percent_of_current, rule.max_percent_of_current
    if low is not None and percent < low:
        return _fail(
            rule,
            0,
            [],
            f"file has {rows} rows, {percent}% of the {current} rows in the table (minimum {low:g}%)",
        )
    if high is not None and percent > high:
        return _fail(
            rule,
            0,
            [],
            f"file has {rows} rows, {percent}% of the {current} rows in the table (maximum {high:g}%)",
        )
    return _pass(rule)


def _proven(rule: Rule, ctx: RuleContext) -> bool:
    """Whether the inferred type or the profile already shows `rule` holds for every value."""
    column = rule.columns[0] if rule.columns else ""
    if rule.kind == "type" and rule.type is not None and rule.format is None:
        staged = ctx.column_types.get(column)
        return (
            staged is not None and staged.kind in _SATISFIES[rule.type] and staged.kind is not ColumnKind.TEXT
        )
    if rule.kind == "range":
        profiled = ctx.profile_columns.get(column, {})
        low, high = profiled.get("min"), profiled.get("max")
        if "mean" not in profiled or not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
            return False
        if profiled.get("from_sample"):
            return False  # a sample's min/max say nothing about the rows left out
        if isinstance(rule.min, date) or isinstance(rule.max, date):
            return False
        # The profile's min/max are floats: only trust them with a margin of float precision.
        margin = 1e-9 * max(1.0, abs(low), abs(high))
        return (rule.min is None or low - margin >= float(rule.min)) and (
            rule.max is None or high + margin <= float(rule.max)
        )
    return False


def _scan(
    conn: Connection, stage: sa.FromClause, rules: list[tuple[int, Rule]], ctx: RuleContext
) -> dict[int, RuleResult]:
    """One streamed pass over the columns the Python-checked rules need."""
    if not rules:
        return {}
    columns = sorted({r.columns[0] for _, r in rules})
    position = {c: i + 1 for i, c in enumerate(columns)}
    checks = [(i, rule, position[rule.columns[0]], _checker(rule, ctx)) for i, rule in rules]
    counts = {i: 0 for i, _ in rules}
    worst: dict[int, list[tuple[int, str]]] = {i: [] for i, _ in rules}
    query = sa.select(stage.c._row_number, *(stage.c[c] for c in columns)).execution_options(
        yield_per=SCAN_BATCH_ROWS
    )
    for row in conn.execute(query):
        for i, _rule, at, ok in checks:
            value = row[at]
            if value is None or value == "" or ok(value):
                continue
            counts[i] += 1
            kept = worst[i]
            # Keep the smallest row numbers (a max-heap by negated row number).
            item = (-int(row[0]), value)
            if len(kept) < EXAMPLES:
                heapq.heappush(kept, item)
            elif item > kept[0]:
                heapq.heapreplace(kept, item)
    out: dict[int, RuleResult] = {}
    for i, rule, _at, _ok in checks:
        if not counts[i]:
            out[i] = _pass(rule)
            continue
        examples = [{"row": -r, "value": v} for r, v in sorted(worst[i], reverse=True)]
        out[i] = _fail(rule, counts[i], examples)
    return out


def _checker(rule: Rule, ctx: RuleContext) -> Any:
    if rule.kind == "pattern" and rule.regex is not None:
        fullmatch = rule.regex.fullmatch
        return lambda value: fullmatch(value) is not None
    if rule.kind == "allowed":
        allowed = rule.values
        return allowed.__contains__
    if rule.kind == "type" and rule.type is not None:
        return _type_checker(rule.type, rule.format)
    if rule.kind == "range":
        return _range_checker(rule, ctx.column_types.get(rule.columns[0]))
    raise ValueError(f"rule {rule.kind} is not checked by scanning")


def _type_checker(kind: ColumnKind, fmt: str | None) -> Any:
    if kind in (ColumnKind.DATE, ColumnKind.DATETIME):
        if fmt:
            target = ColumnType(kind, date_format=fmt)
            return lambda value: _parses(value, target)
        return lambda value: value_kind(value) is kind
    if kind is ColumnKind.BOOLEAN:
        return lambda value: value in ("0", "1") or value_kind(value) is ColumnKind.BOOLEAN
    if kind is ColumnKind.DECIMAL:
        return lambda value: value_kind(value) in (ColumnKind.INTEGER, ColumnKind.DECIMAL)
    low, high = _INT_RANGES[kind]
    return lambda value: value_kind(value) is ColumnKind.INTEGER and low <= int(value) <= high


def _parses(value: str, target: ColumnType) -> bool:
    try:
        parse_value(value, target)
    except ValueError:
        return False
    return True


def _range_checker(rule: Rule, staged: ColumnType | None) -> Any:
    low, high = rule.min, rule.max
    dated = isinstance(low, (date, datetime)) or isinstance(high, (date, datetime))

    def convert(value: str) -> Any:
        if not dated:
            number = Decimal(value.strip())
            if not number.is_finite():
                raise ValueError(value)
            return number
        if staged is not None and staged.date_format:
            parsed = parse_value(value, staged)
        else:
            parsed = datetime.fromisoformat(value.strip())
        bound = low if low is not None else high
        if isinstance(bound, datetime):
            return parsed if isinstance(parsed, datetime) else datetime.combine(parsed, datetime.min.time())  # type: ignore[arg-type]
        return parsed.date() if isinstance(parsed, datetime) else parsed

    def ok(value: str) -> bool:
        try:
            converted = convert(value)
            return (low is None or converted >= low) and (high is None or converted <= high)
        except (ValueError, InvalidOperation, TypeError):
            return False  # not comparable with the bounds: out of range

    return ok
