"""Data quality over the staged rows, before publishing: the load profile and the gate in front of it.

Order inside the loader's read transaction, on the load's own connection:

1. `profile_staged` turns what the staging observer gathered into the load profile.
2. `check_staged` evaluates the table's rules (`validation`), its SQL hooks (`validation_hook`)
   and its sensitive-data policy (`sensitive`). Any blocking failure raises ValidationFailedError
   with the whole report; nothing has been published and the staging table is dropped. When
   everything passes, columns under a ``hash``/``mask`` policy are rewritten in the staging
   table, so ``ref`` and ``bkp`` never hold the clear values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend import tracking
from backend.db.engine import Database
from backend.errors import IngestError, ValidationFailedError
from backend.models import ColumnKind, ColumnType, LoadType, TablePlan
from backend.policies import SensitiveAction, Severity, TablePolicy
from backend.quality.describe import build_profile, fingerprint, previous_fingerprint
from backend.quality.hook import run_hooks
from backend.quality.profile import ProfileObserver
from backend.quality.sensitive import protect_staged, redact
from backend.quality.validation import RuleContext, RuleResult, evaluate_rules

#: Offending row numbers carried by a ValidationFailedError.
MAX_ERROR_ROWS = 50
#: Longest error message (the full report is in the error's details).
MAX_MESSAGE_CHARS = 1500
SHA256_HEX_CHARS = 64

__all__ = ["Checked", "check_staged", "fingerprint", "profile_staged", "record_failure"]


@dataclass(frozen=True)
class Checked:
    """What passed the gate: the audit report, the profile to store and the types to publish with."""

    report: dict[str, Any]
    profile: dict[str, Any]
    column_types: tuple[ColumnType, ...]


def stage_columns(stage: sa.FromClause) -> tuple[str, ...]:
    """The file's columns as staged (everything but ``_row_number``)."""
    return tuple(c.name for c in stage.columns if c.name != "_row_number")


def profile_staged(
    conn: Connection,
    db: Database,
    stage: sa.FromClause,
    plan: TablePlan,
    column_types: tuple[ColumnType, ...],
    observer: ProfileObserver | None = None,
    policy: TablePolicy | None = None,
    empty_counts: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The load profile from the staging observer, with this and the previous load's fingerprint.

    `empty_counts` (from `StageResult`) are the exact empty cells per column.
    """
    columns = stage_columns(stage)
    observer = observer or ProfileObserver(len(columns))
    return build_profile(
        observer,
        columns,
        column_types,
        empty_as_null=db.settings.empty_as_null,
        detect_sensitive=policy.detect_sensitive if policy is not None else True,
        declared_sensitive=tuple(policy.sensitive_columns) if policy is not None else (),
        previous_fingerprint=previous_fingerprint(conn, db, plan.table),
        empty_counts=empty_counts,
    )


def check_staged(
    conn: Connection,
    db: Database,
    stage: sa.FromClause,
    plan: TablePlan,
    policy: TablePolicy,
    *,
    load_type: LoadType,
    rows_staged: int,
    column_types: Sequence[ColumnType] = (),
    profile: dict[str, Any] | None = None,
    load_id: int,
    target: sa.Table,
) -> Checked:
    """Evaluate the table's rules, hooks and sensitive-data policy against this load's rows.

    `stage` presents the rows as the file had them (`load.attempt.this_load`); `target` is the
    table they are in, where columns under a ``hash``/``mask`` policy are rewritten before publish.

    Raises:
        ValidationFailedError: a blocking rule failed; ``rows`` hold offending row numbers and
            ``details["validation"]`` the whole report (``details["profile"]`` the profile).
    """
    columns = stage_columns(stage)
    profile = profile or {}
    types = tuple(column_types) or tuple(ColumnType() for _ in columns)
    # Only rules look at the live table (a unique key across appends, a row-count share); a
    # table without rules spares the catalog round trip, which a burst of small files pays per file.
    live: sa.FromClause | None = (
        db.reflect(conn, plan.table, db.catalog.data_schema) if policy.rules else None
    )
    if live is not None and load_type is LoadType.APPEND:
        # An append's own rows are already in the live table (not yet committed): leave them out.
        live = sa.select(live).where(live.c._load_id != load_id).subquery("refdata_live")
    ctx = RuleContext(
        file_columns=columns,
        load_type=load_type,
        rows_staged=rows_staged,
        column_types=dict(zip(columns, types, strict=True)),
        profile_columns={c["name"]: c for c in profile.get("columns", [])},
        live=live,
    )
    results = evaluate_rules(conn, stage, policy.rules, ctx)
    results += run_hooks(
        conn, db, stage, target, policy, table=plan.table, load_type=load_type, load_id=load_id
    )
    actions = sensitive_actions(policy, profile.get("sensitive", {}), columns)
    results += [
        RuleResult(
            f"sensitive({name})",
            "sensitive",
            Severity.ERROR,
            passed=False,
            message=f"column holds {kind or 'sensitive data'}; the table's policy refuses it",
        )
        for name, (kind, action) in actions.items()
        if action is SensitiveAction.REFUSE
    ]
    results = [_redacted(result, policy) for result in results]
    report = _report(results, actions, plan)
    failed = [r for r in results if r.blocking]
    if failed:
        raise ValidationFailedError(
            _message(failed),
            rows=_rows(failed),
            details={"validation": report, "profile": profile},
        )
    protect = {
        n: a.value for n, (_k, a) in actions.items() if a in (SensitiveAction.HASH, SensitiveAction.MASK)
    }
    protect_staged(conn, db, target, load_id, protect)
    stored = {**profile, "validation": _summary(report)}
    return Checked(report, stored, _protected_types(columns, types, protect))


def _redacted(result: RuleResult, policy: TablePolicy) -> RuleResult:
    """`result` with the example values of the policy's protected columns masked: they go to the
    sidecar, the tracking row, the audit events and the logs."""
    if not result.examples or not policy.sensitive_columns:
        return result
    examples = []
    for example in result.examples:
        example = dict(example)
        if "value" in example and result.columns and example["value"] is not None:
            example["value"] = redact(policy, result.columns[0], str(example["value"]))
        if isinstance(example.get("values"), dict):
            example["values"] = {
                c: v if v is None else redact(policy, c, str(v)) for c, v in example["values"].items()
            }
        examples.append(example)
    return replace(result, examples=examples)


def sensitive_actions(
    policy: TablePolicy, flags: dict[str, str], columns: Sequence[str]
) -> dict[str, tuple[str | None, SensitiveAction]]:
    """{column: (detected kind, action)} for flagged columns and columns the policy names."""
    out: dict[str, tuple[str | None, SensitiveAction]] = {}
    for name in columns:
        kind = flags.get(name)
        action = policy.sensitive_columns.get(name)
        if action is None and kind is not None:
            action = policy.sensitive_action
        if action is not None:
            out[name] = (kind, action)
    return out


def record_failure(db: Database, tracking_id: int, error: IngestError) -> None:
    """Keep a refused load's validation report and profile in its tracking row and an audit event."""
    report = error.details.get("validation")
    if report is None:
        return
    profile = error.details.get("profile") or {}
    tracking.update(db, tracking_id, profile=tracking.to_json({**profile, "validation": _summary(report)}))
    tracking.event(db, tracking_id, "validation_failed", report)


def _report(
    results: list[RuleResult], actions: dict[str, tuple[str | None, SensitiveAction]], plan: TablePlan
) -> dict[str, Any]:
    evolution = getattr(plan, "evolution", None)
    return {
        "rules": [r.to_dict() for r in results],
        "failed": [r.describe() for r in results if r.blocking],
        "warnings": [r.describe() for r in results if not r.passed and not r.blocking],
        "sensitive": {n: {"kind": k, "action": a.value} for n, (k, a) in actions.items()},
        "schema": evolution.to_dict() if evolution is not None else None,
    }


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The part of the report the tracking row keeps with the profile."""
    return {
        "rules": len(report["rules"]),
        "failed": report["failed"],
        "warnings": report["warnings"],
        "sensitive": report["sensitive"],
    }


def _message(failed: list[RuleResult]) -> str:
    text = "validation failed: " + "; ".join(r.describe() for r in failed)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _rows(failed: list[RuleResult]) -> tuple[int, ...]:
    rows = sorted({int(e["row"]) for r in failed for e in r.examples if "row" in e})
    return tuple(rows[:MAX_ERROR_ROWS])


def _protected_types(
    columns: Sequence[str], types: Sequence[ColumnType], protect: dict[str, str]
) -> tuple[ColumnType, ...]:
    """Hashed or masked columns are text: a hash is 64 hex digits, a mask keeps the length."""
    out = []
    for name, column_type in zip(columns, types, strict=True):
        action = protect.get(name)
        if action is None:
            out.append(column_type)
        else:
            length = SHA256_HEX_CHARS if action == "hash" else column_type.length
            out.append(ColumnType(ColumnKind.TEXT, length=length))
    return tuple(out)
