"""Validation rules from config/tables/<table>.yaml, checked on the staged data (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mssql import pyodbc

from backend.errors import ValidationFailedError
from backend.models import LoadType
from tests.support import export_rows, make_settings

COUNTRIES = [
    ["code", "name", "continent", "population", "founded"],
    ["DE", "Germany", "EU", "83000000", "1949-05-23"],
    ["FR", "France", "EU", "68000000", "1958-10-04"],
    ["JP", "Japan", "AS", "125000000", "1947-05-03"],
    ["BR", "Brazil", "SA", "203000000", "1822-09-07"],
]


def refused(env, path, **kw) -> ValidationFailedError:
    with pytest.raises(ValidationFailedError) as info:
        env.load(path, **kw)
    return info.value


def rule_result(exc: ValidationFailedError, name: str) -> dict:
    return next(r for r in exc.details["validation"]["rules"] if r["rule"] == name)


class TestColumnRules:
    def test_missing_required_column_refuses_the_file(self, env):
        """A required column absent from the file fails the load and names the column."""
        env.policy("countries", "rules:\n  - {rule: required, columns: [code, iso3]}\n")
        exc = refused(env, env.csv("countries.csv", COUNTRIES))
        assert "required(code,iso3): file lacks iso3" in str(exc)
        assert not env.has_table("countries")

    def test_not_null_reports_count_rows_and_values(self, env):
        """Empty cells in a not_null column fail with the count and the first offending row numbers."""
        env.policy("countries", "rules:\n  - {rule: not_null, columns: [name, continent]}\n")
        rows = [*COUNTRIES, ["XX", "", "", "1", "2000-01-01"], ["YY", "Y", "", "1", "2000-01-01"]]
        exc = refused(env, env.csv("countries.csv", rows))
        name, continent = rule_result(exc, "not_null(name)"), rule_result(exc, "not_null(continent)")
        assert (name["offending_rows"], [e["row"] for e in name["examples"]]) == (1, [5])
        assert (continent["offending_rows"], [e["row"] for e in continent["examples"]]) == (2, [5, 6])
        assert exc.rows == (5, 6)
        assert "not_null(continent): 2 rows (row 5 '', row 6 '')" in str(exc)

    def test_unique_single_column_lists_every_duplicate_row(self, env):
        """Duplicated keys fail with all rows holding a repeated key, first ones as examples."""
        env.policy("countries", "rules:\n  - {rule: unique, column: code}\n")
        rows = [*COUNTRIES, ["DE", "Germany again", "EU", "1", "2000-01-01"]]
        exc = refused(env, env.csv("countries.csv", rows))
        result = rule_result(exc, "unique(code)")
        assert result["offending_rows"] == 2
        assert result["examples"] == [{"row": 1, "value": "DE"}, {"row": 5, "value": "DE"}]

    def test_unique_composite_key_allows_repeats_of_one_part(self, env):
        """A composite key only fails when the whole combination repeats."""
        env.policy("rates", "rules:\n  - {rule: unique, columns: [currency, day]}\n")
        ok = [["currency", "day", "rate"], ["EUR", "1", "1.0"], ["EUR", "2", "1.1"], ["USD", "1", "0.9"]]
        env.load(env.csv("rates.csv", ok))
        bad = [*ok, ["USD", "1", "0.8"]]
        exc = refused(env, env.csv("rates.csv", bad))
        result = rule_result(exc, "unique(currency,day)")
        assert result["offending_rows"] == 2
        assert result["examples"][0] == {"row": 3, "values": {"currency": "USD", "day": "1"}}

    def test_unique_on_append_also_checks_rows_already_in_the_table(self, env):
        """An append whose key repeats one already loaded is refused, though the file alone is unique."""
        env.policy("events", "rules:\n  - {rule: unique, column: id}\n")
        env.load(env.csv("events.csv", [["id", "what"], ["1", "a"], ["2", "b"]]), LoadType.APPEND)
        exc = refused(
            env,
            env.csv("events.csv", [["id", "what"], ["3", "c"], ["2", "again"]]),
            load_type=LoadType.APPEND,
        )
        result = rule_result(exc, "unique(id)")
        assert result["offending_rows"] == 1
        assert result["examples"] == [{"row": 2, "value": "2"}]
        assert env.rows("SELECT COUNT(*) FROM ref.events") == [(2,)]

    def test_allowed_values_reject_others_and_ignore_empty_cells(self, env):
        """Values outside the enum fail; empty cells are left to not_null."""
        env.policy(
            "countries", "rules:\n  - {rule: allowed, column: continent, values: [EU, AS, SA, 'NO']}\n"
        )
        rows = [*COUNTRIES, ["XX", "X", "", "1", "2000-01-01"], ["YY", "Y", "Atlantis", "1", "2000-01-01"]]
        exc = refused(env, env.csv("countries.csv", rows))
        assert rule_result(exc, "allowed(continent)")["examples"] == [{"row": 6, "value": "Atlantis"}]

    def test_pattern_must_match_the_whole_value(self, env):
        """A regex pattern is anchored: 'DEU' does not pass '[A-Z]{2}'."""
        env.policy("countries", "rules:\n  - {rule: pattern, column: code, regex: '[A-Z]{2}'}\n")
        rows = [*COUNTRIES, ["DEU", "X", "EU", "1", "2000-01-01"], ["fr", "Y", "EU", "1", "2000-01-01"]]
        exc = refused(env, env.csv("countries.csv", rows))
        result = rule_result(exc, "pattern(code)")
        assert result["offending_rows"] == 2
        assert result["examples"] == [{"row": 5, "value": "DEU"}, {"row": 6, "value": "fr"}]

    def test_type_rule_finds_values_that_are_not_integers(self, env):
        """A type rule on a text-staged column reports the values that do not fit."""
        env.policy("countries", "rules:\n  - {rule: type, column: population, type: integer}\n")
        rows = [*COUNTRIES, ["XX", "X", "EU", "1.5", "2000-01-01"], ["YY", "Y", "EU", "007", "2000-01-01"]]
        exc = refused(env, env.csv("countries.csv", rows))
        assert rule_result(exc, "type(population)")["examples"] == [
            {"row": 5, "value": "1.5"},
            {"row": 6, "value": "007"},
        ]

    def test_type_rule_with_date_format(self, env):
        """A date type rule with a format refuses dates written another way."""
        env.policy("countries", "rules:\n  - {rule: type, column: founded, type: date, format: '%Y-%m-%d'}\n")
        rows = [*COUNTRIES, ["XX", "X", "EU", "1", "23/05/1949"]]
        exc = refused(env, env.csv("countries.csv", rows))
        assert rule_result(exc, "type(founded)")["examples"] == [{"row": 5, "value": "23/05/1949"}]

    def test_range_on_numbers_and_dates(self, env):
        """Numeric and date ranges report out-of-range and non-comparable values."""
        env.policy(
            "countries",
            "rules:\n"
            "  - {rule: range, column: population, min: 1000000, max: 200000000}\n"
            "  - {rule: range, column: founded, min: 1900-01-01}\n",
        )
        exc = refused(env, env.csv("countries.csv", [*COUNTRIES, ["XX", "X", "EU", "many", "2000-01-01"]]))
        assert rule_result(exc, "range(population)")["examples"] == [
            {"row": 4, "value": "203000000"},
            {"row": 5, "value": "many"},
        ]
        assert rule_result(exc, "range(founded)")["examples"] == [{"row": 4, "value": "1822-09-07"}]

    def test_range_is_checked_in_the_table_when_the_profile_is_a_sample(self, env):
        """A value out of range in a row the profile did not sample still fails the range rule."""
        env.policy("stock", "rules:\n  - {rule: range, column: qty, min: -1, max: 100}\n")
        rows = [["sku", "qty"], *[[f"s{i}", str(i % 100)] for i in range(30_000)]]
        rows[25_001][1] = "5000"
        exc = refused(env, env.csv("stock.csv", rows))
        profiled = next(c for c in exc.details["profile"]["columns"] if c["name"] == "qty")
        # The sample missed the bad row: trusting its max would have let the file through.
        assert profiled["from_sample"] is True and profiled["max"] < 5000
        assert rule_result(exc, "range(qty)")["examples"] == [{"row": 25_001, "value": "5000"}]

    def test_rules_that_hold_let_the_load_through_and_are_recorded(self, env):
        """When every rule holds the load publishes and the validated event lists each rule as passed."""
        env.policy(
            "countries",
            "rules:\n"
            "  - {rule: not_null, columns: [code, name]}\n"
            "  - {rule: unique, column: code}\n"
            "  - {rule: range, column: population, min: 0}\n"
            "  - {rule: pattern, column: code, regex: '[A-Z]{2}'}\n",
        )
        result = env.load(env.csv("countries.csv", COUNTRIES))
        assert result.rows_loaded == 4
        ((_, report),) = env.events("validated")
        assert [r["rule"] for r in report["rules"]] == [
            "not_null(code)",
            "not_null(name)",
            "unique(code)",
            "range(population)",
            "pattern(code)",
        ]
        assert all(r["passed"] for r in report["rules"])

    def test_rule_on_a_column_the_file_lacks_fails(self, env):
        """A rule naming a column that is not in the file fails instead of silently passing."""
        env.policy("countries", "rules:\n  - {rule: not_null, column: capital}\n")
        exc = refused(env, env.csv("countries.csv", COUNTRIES))
        assert "not_null(capital): column capital is not in the file" in str(exc)


class TestSeverity:
    def test_warn_rule_records_without_failing(self, env):
        """A failing rule with severity warn is kept in the report and the profile; the load goes on."""
        env.policy(
            "countries", "rules:\n  - {rule: allowed, column: continent, values: [EU], severity: warn}\n"
        )
        result = env.load(env.csv("countries.csv", COUNTRIES))
        assert result.rows_loaded == 4
        ((_, report),) = env.events("validated")
        assert report["failed"] == []
        assert report["warnings"] == ["allowed(continent): 2 rows (row 3 'AS', row 4 'SA')"]
        assert env.profile()["validation"]["warnings"] == report["warnings"]


class TestRowCountGuard:
    def test_truncated_fullload_is_refused_and_the_table_is_untouched(self, env):
        """A fullload with less than the configured share of the current rows changes neither ref nor bkp."""
        env.policy("items", "rules:\n  - {rule: row_count, min_percent_of_current: 90}\n")
        full = [["id"], *[[str(i)] for i in range(100)]]
        env.load(env.csv("items.csv", full))
        exc = refused(env, env.csv("items.csv", [["id"], *[[str(i)] for i in range(10)]]))
        assert "file has 10 rows, 10.0% of the 100 rows in the table (minimum 90%)" in str(exc)
        assert export_rows(env.db, "items") == full
        assert not env.has_table("items", "bkp")
        row = env.tracking()
        assert row["status"] == "error" and "row_count" in row["error_message"]

    def test_min_rows_and_max_percent(self, env):
        """min_rows refuses small files on any load; max_percent_of_current refuses a sudden growth."""
        env.policy("items", "rules:\n  - {rule: row_count, min_rows: 3, max_percent_of_current: 200}\n")
        env.load(env.csv("items.csv", [["id"], ["1"], ["2"], ["3"]]))
        assert "fewer than the minimum of 3" in str(refused(env, env.csv("items.csv", [["id"], ["1"]])))
        big = [["id"], *[[str(i)] for i in range(7)]]
        assert "(maximum 200%)" in str(refused(env, env.csv("items.csv", big)))
        appended = env.load(env.csv("items.csv", big), LoadType.APPEND)
        assert appended.rows_loaded == 7  # the share of current rows guards fullloads only


class TestFailureRecord:
    def test_report_goes_to_tracking_row_audit_event_and_error_details(self, env):
        """A refused load keeps the report in its tracking row, a validation_failed event and the error."""
        env.policy("countries", "rules:\n  - {rule: not_null, column: name}\n")
        exc = refused(env, env.csv("countries.csv", [*COUNTRIES, ["XX", "", "EU", "1", "2000-01-01"]]))
        row = env.tracking()
        assert row["status"] == "error" and row["error_stage"] == "validate"
        assert "not_null(name): 1 row (row 5 '')" in row["error_message"]
        stored = json.loads(row["profile"])
        assert stored["validation"]["failed"] == ["not_null(name): 1 row (row 5 '')"]
        assert stored["rows"] == 5
        ((_, report),) = env.events("validation_failed")
        assert report == exc.details["validation"]

    def test_daemon_writes_the_report_into_the_error_sidecar(self, tmp_path, sqlite_url):
        """Through the daemon, the rejected file lands in error/ with rule, count and rows in its sidecar."""
        from backend.daemon.loop import run

        settings = make_settings(tmp_path, sqlite_url, monitor_interval=0.05, stability_checks=1, workers=1)
        tables = settings.config_dir / "tables"
        tables.mkdir(parents=True)
        (tables / "codes.yaml").write_text("rules:\n  - {rule: unique, column: code}\n", encoding="utf-8")
        folder = settings.dropoff_base_path / "reference_data_table" / "fullload"
        folder.mkdir(parents=True)
        (folder / "codes.csv").write_text("code\nA\nB\nA\n", encoding="utf-8")
        assert run(settings, threading.Event(), until_idle=True) == 0
        (sidecar,) = (folder / "error").glob("*.error.json")
        body = json.loads(sidecar.read_text(encoding="utf-8"))
        assert body["stage"] == "validate"
        assert body["rows"] == [1, 3]
        assert body["details"]["validation"]["rules"][0]["offending_rows"] == 2


class TestSqlServerStatements:
    def test_rule_and_evolution_statements_compile_for_sql_server(self, sqlite_env):
        """Every statement the rules and the row-count guard issue compiles for mssql with <= 2,100 params."""
        env = sqlite_env
        env.policy(
            "codes",
            "schema_evolution: add_columns\n"
            "rules:\n"
            "  - {rule: not_null, columns: [code, name]}\n"
            "  - {rule: unique, columns: [code, name]}\n"
            "  - {rule: allowed, column: code, values: [A, B, C, D]}\n"
            "  - {rule: pattern, column: code, regex: '[A-D]'}\n"
            "  - {rule: row_count, min_rows: 1, min_percent_of_current: 10}\n",
        )
        seen: list[sa.ClauseElement] = []

        @sa.event.listens_for(env.db.engine, "before_execute")
        def capture(conn, clauseelement, multiparams, params, execution_options):
            if isinstance(clauseelement, sa.ClauseElement) and not isinstance(
                clauseelement, sa.schema.ExecutableDDLElement
            ):
                seen.append(clauseelement)

        env.load(env.csv("codes.csv", [["code", "name"], ["A", "x"], ["B", "y"]]))
        env.load(env.csv("codes.csv", [["code", "name", "extra"], ["C", "z", "1"]]), LoadType.APPEND)
        env.load(env.csv("codes.csv", [["code", "name", "extra"], ["D", "w", "2"]]))
        dialect = pyodbc.dialect(paramstyle="qmark")
        compiled = [s.compile(dialect=dialect) for s in seen]
        assert all(len(c.params) <= 2100 for c in compiled)
        sql = "\n".join(str(c) for c in compiled)
        assert "GROUP BY" in sql and "HAVING count(*) > ?" in sql and "NOT IN" in sql
