"""Site-specific validation the operator writes in SQL: a SQL Server procedure or a query file.

Both return the upstream system's JSON contract, ``validation_result`` (the number of blocking
issues, 0 = pass) and ``validation_issue_list`` (a JSON array, e.g.
``[{"issue_id": 1, "issue_detail": "..."}]``), either as two columns or as one column holding
the whole JSON object. Issues listed with a result of 0 are recorded as warnings.

- SQL Server: if ``<schema>.sp_ref_validate_<table>`` exists (schema: ``validation.schema`` in the
  table's policy, default DATA_SCHEMA), it is executed on the load's session before publishing.
  It may declare any of ``@stage_table`` (the quoted, schema-qualified table this load's rows
  are in: the new version's table, or the live table for an append; select
  ``WHERE _load_id = @load_id``), ``@load_id``, ``@load_type`` and ``@table_name``; only the
  declared ones are passed, so the upstream
  system's parameterless procedures keep working. See ``sql/validation_procedure_example.sql``.
- Every dialect: ``config/tables/<table>.validate.sql`` (or ``validation.sql_file``), one query in
  which ``{stage}`` becomes this load's rows (a subquery for FROM), ``{table}`` the quoted live
  table (which may
  not exist yet on a first load), ``{load_id}`` the load id and ``{load_type}`` ``fullload`` or
  ``append``. Values are the file's text; empty cells are NULL (typed columns, and text ones
  with EMPTY_AS_NULL) or ``''``. The query runs through SQLAlchemy's
  ``text()``: a literal ``:name`` must be written ``\\:name``.

A hook that fails to run (syntax error, missing object) refuses the load: validation that cannot
run must not let data through.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database, is_transient, translate_error
from backend.errors import IngestError, ValidationFailedError
from backend.models import LoadType
from backend.policies import Severity, TablePolicy
from backend.quality.validation import RuleResult

PROCEDURE_PREFIX = "sp_ref_validate_"
#: Issues kept in the report per hook.
MAX_ISSUES = 20


def run_hooks(
    conn: Connection,
    db: Database,
    stage: sa.FromClause,
    target: sa.Table,
    policy: TablePolicy,
    *,
    table: str,
    load_type: LoadType,
    load_id: int | None,
) -> list[RuleResult]:
    """Run the table's procedure (SQL Server) and query file (any dialect); one result each that ran."""
    results: list[RuleResult] = []
    if policy.validation_procedure:
        found = _run_procedure(conn, db, target, policy, table=table, load_type=load_type, load_id=load_id)
        if found is not None:
            results.append(found)
    if policy.validation_sql is not None:
        results.append(_run_file(conn, db, stage, policy, table=table, load_type=load_type, load_id=load_id))
    return results


def _run_procedure(
    conn: Connection,
    db: Database,
    stage: sa.Table,
    policy: TablePolicy,
    *,
    table: str,
    load_type: LoadType,
    load_id: int | None,
) -> RuleResult | None:
    schema = policy.validation_schema or db.catalog.data_schema
    statements = db.adapter.procedure_statements(conn, schema, PROCEDURE_PREFIX + table)
    if statements is None:
        return None  # no stored procedures on this database
    label = f"procedure({schema}.{PROCEDURE_PREFIX}{table})"
    try:
        if conn.execute(statements.exists).scalar() is None:
            return None
        declared = [str(r[0]).lstrip("@").lower() for r in conn.execute(statements.parameters)]
        values = {
            # Quoted and schema-qualified: the procedure reads it with dynamic SQL.
            "stage_table": conn.dialect.identifier_preparer.format_table(stage),
            "load_id": load_id or 0,
            "load_type": load_type.value,
            "table_name": table,
        }
        result = conn.execute(statements.execute(declared), {k: values[k] for k in declared if k in values})
        row = result.mappings().first() if result.returns_rows else None
    except sa.exc.DBAPIError as exc:
        raise _broken(label, exc) from exc
    return interpret(label, row)


def _run_file(
    conn: Connection,
    db: Database,
    stage: sa.FromClause,
    policy: TablePolicy,
    *,
    table: str,
    load_type: LoadType,
    load_id: int | None,
) -> RuleResult:
    path = policy.validation_sql
    assert path is not None  # noqa: S101 - checked by the caller
    label = f"sql_file({path.name})"
    live = db.reflect(conn, table, db.catalog.data_schema)
    adapter = db.adapter
    select = stage.element if isinstance(stage, sa.Subquery) else sa.select(stage)
    try:
        stage_name = adapter.temporary_view(conn, "refdata_stage", select)
        if live is None:
            live_name = conn.dialect.identifier_preparer.format_table(
                sa.Table(table, sa.MetaData(), schema=db.catalog.data_schema)
            )
        else:
            # The table's rows other than this load's (an append's rows are in it, uncommitted).
            others = sa.select(live).where(live.c._load_id != int(load_id or 0))
            live_name = adapter.temporary_view(conn, "refdata_live", others)
        sql = (
            path.read_text(encoding="utf-8")
            .replace("{stage}", stage_name)
            .replace("{table}", live_name)
            .replace("{load_id}", str(int(load_id or 0)))
            .replace("{load_type}", load_type.value)
        )
        result = conn.execute(sa.text(sql))
        row = result.mappings().first() if result.returns_rows else None
        adapter.drop_temporary_views(conn, ("refdata_stage", "refdata_live"))
    except sa.exc.DBAPIError as exc:
        raise _broken(label, exc) from exc
    return interpret(label, row)


def interpret(label: str, row: Any) -> RuleResult:
    """A hook's first result row as a rule result; raises ValidationFailedError when malformed."""
    if row is None:
        raise ValidationFailedError(f"validation {label} returned no row; expected validation_result")
    data = {str(k).lower(): v for k, v in dict(row).items()}
    if "validation_result" not in data:
        if len(data) != 1:
            raise ValidationFailedError(
                f"validation {label} must return validation_result and validation_issue_list, "
                f"got {sorted(data)}"
            )
        data = _json_object(label, next(iter(data.values())))
    try:
        count = int(data.get("validation_result") or 0)
    except (TypeError, ValueError):
        raise ValidationFailedError(f"validation {label}: validation_result is not a number") from None
    issues = data.get("validation_issue_list") or []
    if isinstance(issues, (str, bytes)):
        issues = json.loads(issues) if issues.strip() else []
    if not isinstance(issues, list):
        issues = [issues]
    result = RuleResult(label, "hook", Severity.ERROR if count > 0 else Severity.WARN)
    result.passed = count == 0 and not issues
    result.offending_rows = count
    result.examples = [i if isinstance(i, dict) else {"issue_detail": str(i)} for i in issues[:MAX_ISSUES]]
    if count > 0:
        result.message = f"{count} issue{'s' if count != 1 else ''} reported"
    elif issues:
        result.message = f"{len(issues)} warning{'s' if len(issues) != 1 else ''} reported"
    return result


def _json_object(label: str, value: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if isinstance(value, (str, bytes)) else value
    except ValueError:
        raise ValidationFailedError(f"validation {label} returned text that is not JSON") from None
    if not isinstance(parsed, dict):
        raise ValidationFailedError(f"validation {label} must return a JSON object")
    return {str(k).lower(): v for k, v in parsed.items()}


def _broken(label: str, exc: sa.exc.DBAPIError) -> IngestError:
    if is_transient(exc):
        return translate_error(exc, stage="validate")  # retried later, not the file's fault
    text = str(exc.orig or exc).strip().splitlines()
    return ValidationFailedError(
        f"validation {label} could not run: {text[0] if text else exc.__class__.__name__}"
    )
