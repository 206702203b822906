"""Schema analysis and the schema-evolution policies, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from backend.errors import IngestError, SchemaMismatchError
from backend.load.evolve import compare_columns, decide
from backend.models import LoadType, TypePolicy
from backend.ops.restore import restore_version
from backend.policies import SchemaEvolution
from tests.support import export_rows, make_settings, run_cli

PEOPLE = [["id", "name", "country_code"], ["1", "Ann", "DE"], ["2", "Bob", "FR"]]


def schema_report(env) -> dict:
    return json.loads(env.tracking()["schema_report"])


class TestAnalysis:
    def test_report_lists_match_missing_extra_and_renamed_looking_columns(self):
        """Columns differing only by underscores are reported as renamed-looking, besides missing/extra."""
        report = compare_columns(
            "people", ["id", "name", "country_code"], ["id", "name", "countrycode", "email"]
        )
        assert report.match_percent == 40.0
        assert report.missing == ("country_code",)
        assert report.extra == ("countrycode", "email")
        assert report.renamed == (("countrycode", "country_code"),)

    def test_mismatch_is_refused_by_default_and_recorded_in_the_tracking_row(self, env):
        """With no policy a fullload whose columns differ fails; the schema report is stored as JSON."""
        env.load(env.csv("people.csv", PEOPLE))
        changed = [["id", "name", "CountryCode", "email"], ["3", "Cy", "IT", "c@x.org"]]
        with pytest.raises(SchemaMismatchError, match="looks renamed: countrycode -> country_code"):
            env.load(env.csv("people.csv", changed))
        report = schema_report(env)
        assert report["missing"] == ["country_code"] and report["extra"] == ["countrycode", "email"]
        assert report["renamed"] == [{"file": "countrycode", "table": "country_code"}]
        ((_, decision),) = env.events("schema_decision")
        assert decision["action"] == "fail" and decision["policy"] == "fail"
        assert export_rows(env.db, "people") == PEOPLE

    def test_new_table_reports_the_best_matching_existing_table(self, env):
        """A file whose derived table is new names an existing table matching above 70 %."""
        env.load(env.csv("people.csv", [["id", "name", "city", "zip"], ["1", "Ann", "Berlin", "10115"]]))
        env.load(
            env.csv("persons.csv", [["id", "name", "city", "zip", "phone"], ["1", "Ann", "Berlin", "1", "2"]])
        )
        report = schema_report(env)
        assert report["exists"] is False
        assert report["best_match"] == {"table": "people", "match_percent": 80.0}

    def test_new_table_below_the_threshold_names_no_match(self, env):
        """A table sharing at most 70 % of the columns is not offered as a match."""
        env.load(env.csv("people.csv", [["id", "name", "city"], ["1", "Ann", "Berlin"]]))
        env.load(env.csv("other.csv", [["id", "name", "zip"], ["1", "Ann", "1"]]))
        assert schema_report(env)["best_match"] is None

    def test_detect_with_table_shows_the_comparison(self, sqlite_env, capsys):
        """`detect FILE --table T` prints the match percentage, missing and extra columns."""
        env = sqlite_env
        env.load(env.csv("people.csv", PEOPLE))
        other = env.csv("new.csv", [["id", "name", "email"], ["1", "A", "a@x.org"]])
        command = ["detect", str(other), "--table", "People", "--database-url", env.settings.url]
        capsys.readouterr()  # drop the load's log lines
        code, out, _ = run_cli(command, capsys)
        assert code == 0
        expected = "schema vs ref.people: 50.0% match; missing from file: country_code; not in table: email"
        assert expected in out
        code, out, _ = run_cli([*command, "--json"], capsys)
        assert json.loads(out)["schema_report"]["missing"] == ["country_code"]


class TestAddColumns:
    def test_new_column_is_added_to_ref_and_bkp_and_missing_ones_become_null(self, env):
        """add_columns adds the file's new column, loads NULL where a column is missing, and kept
        versions keep the columns they had."""
        env.policy("people", "schema_evolution: add_columns\n")
        env.load(env.csv("people.csv", PEOPLE))
        env.load(env.csv("people.csv", PEOPLE))  # creates bkp version 1
        env.load(env.csv("people.csv", [["id", "name", "email"], ["3", "Cy", "c@x.org"]]))
        data = [c for c in env.columns("people") if not c.startswith("_")]
        assert data == ["id", "name", "country_code", "email"]
        assert env.rows("SELECT id, name, country_code, email FROM ref.people") == [
            ("3", "Cy", None, "c@x.org")
        ]
        ((_, evolved),) = env.events("schema_evolved")
        assert evolved == {"action": "add_columns", "added": ["email"]}
        ((_, decision),) = env.events("schema_decision")
        assert decision["action"] == "add_columns" and decision["null_filled"] == ["country_code"]
        assert export_rows(env.db, "people", version=2) == PEOPLE

    def test_append_adds_columns_and_keeps_earlier_rows(self, env):
        """An append under add_columns widens the table; earlier rows get NULL in the new column."""
        env.policy("people", "schema_evolution: {append: add_columns}\n")
        env.load(env.csv("people.csv", PEOPLE), LoadType.APPEND)
        env.load(
            env.csv("people.csv", [["id", "name", "country_code", "tier"], ["3", "Cy", "IT", "gold"]]),
            LoadType.APPEND,
        )
        assert env.rows("SELECT id, tier FROM ref.people ORDER BY id") == [
            ("1", None),
            ("2", None),
            ("3", "gold"),
        ]

    def test_renamed_looking_column_is_not_added(self, env):
        """add_columns refuses a column that looks like a renamed existing one."""
        env.policy("people", "schema_evolution: add_columns\n")
        env.load(env.csv("people.csv", PEOPLE))
        with pytest.raises(SchemaMismatchError, match="renamed-looking"):
            env.load(env.csv("people.csv", [["id", "name", "countrycode"], ["3", "Cy", "IT"]]))
        assert "countrycode" not in env.columns("people")


class TestIgnoreExtra:
    def test_extra_columns_are_not_loaded(self, env):
        """ignore_extra loads the table's columns and drops the file's extra ones."""
        env.policy("people", "schema_evolution: ignore_extra\n")
        env.load(env.csv("people.csv", PEOPLE))
        env.load(env.csv("people.csv", [["note", "id", "name", "country_code"], ["x", "3", "Cy", "IT"]]))
        assert "note" not in env.columns("people")
        assert env.rows("SELECT id, name, country_code FROM ref.people") == [("3", "Cy", "IT")]

    def test_missing_column_still_fails(self, env):
        """ignore_extra tolerates extra columns only: a file lacking a column is refused."""
        env.policy("people", "schema_evolution: ignore_extra\n")
        env.load(env.csv("people.csv", PEOPLE))
        with pytest.raises(SchemaMismatchError, match="the file lacks country_code"):
            env.load(env.csv("people.csv", [["id", "name"], ["3", "Cy"]]))


class TestReplace:
    def test_fullload_redefines_the_table_and_keeps_old_rows_and_definition(self, env):
        """replace redefines ref from the file; the replaced version keeps its rows and its own columns."""
        env.policy("people", "schema_evolution: replace\n")
        env.load(env.csv("people.csv", PEOPLE))
        new = [["id", "full_name"], ["7", "Eve Example"]]
        result = env.load(env.csv("people.csv", new))
        assert result.backup_version == 1
        assert env.columns("people")[:2] == ["id", "full_name"] and "name" not in env.columns("people")
        assert export_rows(env.db, "people") == new
        assert export_rows(env.db, "people", version=1) == PEOPLE
        ((_, evolved),) = env.events("schema_evolved")
        assert [c["name"] for c in evolved["previous_definition"]][:3] == ["id", "name", "country_code"]

    def test_restore_after_replace_brings_old_rows_into_the_current_definition(self, env):
        """Restoring a version from before a redefinition fills the current columns it had."""
        env.policy("people", "schema_evolution: replace\n")
        env.load(env.csv("people.csv", PEOPLE))
        env.load(env.csv("people.csv", [["id", "name", "tier"], ["7", "Eve", "gold"]]))
        _, restored, replaced = restore_version(env.db, "people", 1)
        assert (restored, replaced) == (2, 2)
        assert env.rows("SELECT id, name, tier FROM ref.people ORDER BY id") == [
            ("1", "Ann", None),
            ("2", "Bob", None),
        ]

    def test_changed_type_redefines_a_typed_column(self, env):
        """Under replace with inferred types, a column whose values stopped being numbers becomes text."""
        env.settings = make_settings(env.tmp, env.settings.url, type_policy=TypePolicy.INFER)
        env.policy("stock", "schema_evolution: replace\n")
        env.load(env.csv("stock.csv", [["sku", "qty"], ["a", "1"], ["b", "2"]]))
        env.load(env.csv("stock.csv", [["sku", "qty"], ["a", "many"]]))
        assert env.rows("SELECT sku, qty FROM ref.stock") == [("a", "many")]
        ((_, evolved),) = env.events("schema_evolved")
        assert "types changed" in evolved["reason"]
        assert export_rows(env.db, "stock", version=1) == [["sku", "qty"], ["a", "1"], ["b", "2"]]

    def test_restore_of_a_typed_version_after_its_column_became_text_in_bkp(self, env):
        """A version saved while qty was a number restores into a number column; bkp holds qty as text."""
        env.settings = make_settings(env.tmp, env.settings.url, type_policy=TypePolicy.INFER)
        env.policy("stock", "schema_evolution: replace\n")
        env.load(env.csv("stock.csv", [["sku", "qty"], ["a", "1"], ["b", "2"]]))
        env.load(env.csv("stock.csv", [["sku", "qty"], ["a", "many"]]))  # v1 = numbers; bkp.qty widens
        # A new structure redefines the table from this file: qty is a number column again.
        env.load(env.csv("stock.csv", [["sku", "qty", "bin"], ["c", "3", "x"]]))  # v2 = text
        _, restored, _ = restore_version(env.db, "stock", 1)
        assert restored == 2
        rows = env.rows("SELECT sku, qty, bin FROM ref.stock ORDER BY sku")
        assert rows == [("a", 1, None), ("b", 2, None)]

    def test_a_version_whose_values_do_not_fit_the_current_type_is_refused_with_a_reason(self, env):
        """Restoring text that the current number column cannot hold fails clearly and changes nothing."""
        env.settings = make_settings(env.tmp, env.settings.url, type_policy=TypePolicy.INFER)
        env.policy("stock", "schema_evolution: replace\n")
        env.load(env.csv("stock.csv", [["sku", "qty"], ["a", "many"]]))
        env.load(env.csv("stock.csv", [["sku", "qty", "bin"], ["c", "3", "x"]]))  # v1 = text
        with pytest.raises(IngestError, match="version 1"):
            restore_version(env.db, "stock", 1)
        assert env.rows("SELECT sku, qty, bin FROM ref.stock") == [("c", 3, "x")]

    def test_append_cannot_redefine(self, env):
        """An append with different columns fails even when fullloads may replace the table."""
        env.policy("people", "schema_evolution: replace\n")
        env.load(env.csv("people.csv", PEOPLE), LoadType.APPEND)
        with pytest.raises(SchemaMismatchError, match="only a fullload may redefine"):
            env.load(env.csv("people.csv", [["id"], ["9"]]), LoadType.APPEND)


class TestDecide:
    @pytest.mark.parametrize(
        "policy,load_type,action",
        [
            (SchemaEvolution.FAIL, LoadType.FULLLOAD, "fail"),
            (SchemaEvolution.ADD_COLUMNS, LoadType.APPEND, "add_columns"),
            (SchemaEvolution.IGNORE_EXTRA, LoadType.FULLLOAD, "ignore_extra"),
            (SchemaEvolution.REPLACE, LoadType.FULLLOAD, "replace"),
            (SchemaEvolution.REPLACE, LoadType.APPEND, "fail"),
        ],
    )
    def test_decision_per_policy_and_load_type(self, policy, load_type, action):
        """Each policy maps an extra column to its documented action, with a reason."""
        report = compare_columns("t", ["a", "b"], ["a", "b", "c"])
        decision = decide(report, policy, load_type)
        assert decision.action == action and decision.reason
