"""Validation in SQL: the query file on SQLite and PostgreSQL; the SQL Server procedure compiled."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects.mssql import pyodbc

from backend.db.mssql import procedure_statements
from backend.errors import ValidationFailedError
from backend.quality.hook import interpret

#: The dialect the product uses for SQL Server (qmark parameters).
MSSQL = pyodbc.dialect(paramstyle="qmark")
CODES = [["code", "rate"], ["EUR", "1.0"], ["USD", "-1.1"], ["GBP", "0.9"]]

# Counts negative rates; the issue list is built with portable string concatenation.
NEGATIVE_RATES = """
SELECT COUNT(*) AS validation_result,
       CASE WHEN COUNT(*) = 0 THEN '[]'
            ELSE '[{"issue_id": 1, "issue_detail": "' || CAST(COUNT(*) AS VARCHAR(20)) || ' negative rates"}]'
       END AS validation_issue_list
FROM {stage}
WHERE rate LIKE '-%'
"""


class TestQueryFile:
    def test_issues_reported_by_the_query_refuse_the_load(self, env):
        """A validate.sql returning validation_result > 0 fails the load with its issue list."""
        env.tables_dir.mkdir(parents=True)
        (env.tables_dir / "codes.validate.sql").write_text(NEGATIVE_RATES, encoding="utf-8")
        with pytest.raises(ValidationFailedError) as info:
            env.load(env.csv("codes.csv", CODES))
        assert "sql_file(codes.validate.sql): 1 issue reported (1 negative rates)" in str(info.value)
        hook = info.value.details["validation"]["rules"][0]
        assert hook["examples"] == [{"issue_id": 1, "issue_detail": "1 negative rates"}]
        assert not env.has_table("codes")

    def test_query_returning_zero_lets_the_load_through(self, env):
        """validation_result 0 passes; the query saw the staged rows through {stage}."""
        env.tables_dir.mkdir(parents=True)
        (env.tables_dir / "codes.validate.sql").write_text(NEGATIVE_RATES, encoding="utf-8")
        ok = [["code", "rate"], ["EUR", "1.0"]]
        assert env.load(env.csv("codes.csv", ok)).rows_loaded == 1
        ((_, report),) = env.events("validated")
        assert report["rules"] == [
            {"rule": "sql_file(codes.validate.sql)", "severity": "warn", "passed": True, "offending_rows": 0}
        ]

    def test_single_json_column_with_issues_but_zero_result_is_a_warning(self, env):
        """The upstream one-column JSON form works; issues with result 0 are recorded as warnings."""
        env.policy("codes", "validation:\n  sql_file: checks.sql\n")
        (env.tables_dir / "checks.sql").write_text(
            """SELECT '{"validation_result": 0, "validation_issue_list": [{"issue_id": 7, """
            """"issue_detail": "rates look old"}]}' AS ValidationResult""",
            encoding="utf-8",
        )
        env.load(env.csv("codes.csv", CODES))
        ((_, report),) = env.events("validated")
        assert report["warnings"] == ["sql_file(checks.sql): 1 warning reported (rates look old)"]

    def test_query_can_compare_with_the_live_table(self, env):
        """{table} names the live table, so a query can refuse a file that drops existing codes."""
        env.load(env.csv("codes.csv", CODES))
        env.tables_dir.mkdir(parents=True, exist_ok=True)
        (env.tables_dir / "codes.validate.sql").write_text(
            "SELECT COUNT(*) AS validation_result, '[]' AS validation_issue_list FROM {table} t "
            "WHERE NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.code = t.code)",
            encoding="utf-8",
        )
        with pytest.raises(ValidationFailedError, match="2 issues reported"):
            env.load(env.csv("codes.csv", [["code", "rate"], ["EUR", "1.0"]]))

    def test_broken_query_refuses_the_load(self, env):
        """A query that cannot run refuses the file instead of letting it through unchecked."""
        env.tables_dir.mkdir(parents=True)
        (env.tables_dir / "codes.validate.sql").write_text("SELECT nope FROM {stage}", encoding="utf-8")
        with pytest.raises(ValidationFailedError, match=r"sql_file\(codes.validate.sql\) could not run"):
            env.load(env.csv("codes.csv", CODES))

    def test_procedure_hook_is_skipped_on_other_dialects(self, env):
        """On SQLite and PostgreSQL the SQL Server procedure is never looked up."""
        env.policy("codes", "validation:\n  procedure: true\n  schema: ref\n")
        env.load(env.csv("codes.csv", CODES))
        ((_, report),) = env.events("validated")
        assert report["rules"] == []


class TestContract:
    def test_malformed_result_is_refused(self):
        """A row without validation_result (and more than one column) is an error, not a pass."""
        with pytest.raises(ValidationFailedError, match="must return validation_result"):
            interpret("x", {"a": 1, "b": 2})
        with pytest.raises(ValidationFailedError, match="returned no row"):
            interpret("x", None)

    def test_issue_list_given_as_text_is_parsed(self):
        """validation_issue_list may come back as JSON text (NVARCHAR from SQL Server)."""
        result = interpret(
            "p", {"VALIDATION_RESULT": 2, "validation_issue_list": '[{"issue_id": 1}, {"issue_id": 2}]'}
        )
        assert (result.passed, result.offending_rows, len(result.examples)) == (False, 2, 2)


class TestProcedureStatements:
    def test_statements_compile_for_sql_server(self):
        """The existence check, the parameter query and the EXEC compile for mssql with bound values."""
        statements = procedure_statements(MSSQL, "ref", "sp_ref_validate_countries")
        assert statements.name == "ref.sp_ref_validate_countries"
        exists = statements.exists.compile(dialect=MSSQL)
        assert str(exists) == "SELECT OBJECT_ID(?, 'P')" and exists.params == {
            "name": "ref.sp_ref_validate_countries"
        }
        assert "sys.parameters" in str(statements.parameters.compile(dialect=MSSQL))
        call = statements.execute(["stage_table", "load_id", "unknown"]).compile(dialect=MSSQL)
        assert (
            str(call) == "SET NOCOUNT ON; EXEC ref.sp_ref_validate_countries @stage_table = ?, @load_id = ?"
        )

    def test_parameterless_upstream_procedure_gets_no_arguments(self):
        """A procedure declaring no parameters (the upstream system's) is called without any."""
        call = procedure_statements(MSSQL, "validation", "sp_ref_validate_t").execute([])
        assert str(call.compile(dialect=MSSQL)) == "SET NOCOUNT ON; EXEC validation.sp_ref_validate_t"

    def test_odd_names_are_quoted(self):
        """Schema and table names that need quoting are bracketed."""
        statements = procedure_statements(MSSQL, "my schema", "sp_ref_validate_a]b")
        assert statements.name == "[my schema].[sp_ref_validate_a]]b]"
