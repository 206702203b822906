"""Per-table policy files: defaults, the documented sample, and strict refusal of mistakes."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from backend.errors import ConfigError
from backend.models import ColumnKind, LoadType, RaggedPolicy
from backend.policies import SchemaEvolution, SensitiveAction, Severity, load_table_policy

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "tables" / "example.yaml.sample"


def write(tmp_path: Path, text: str, table: str = "t") -> Path:
    tables = tmp_path / "tables"
    tables.mkdir(exist_ok=True)
    (tables / f"{table}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


class TestDefaults:
    def test_table_without_a_file_gets_the_defaults(self, tmp_path):
        """No YAML file: no rules, schema changes fail, sensitive columns are flagged only."""
        policy = load_table_policy(tmp_path, "countries")
        assert policy.rules == ()
        assert policy.evolution_for(LoadType.FULLLOAD) is SchemaEvolution.FAIL
        assert policy.evolution_for(LoadType.APPEND) is SchemaEvolution.FAIL
        assert (policy.detect_sensitive, policy.sensitive_action) == (True, SensitiveAction.FLAG)
        assert policy.validation_sql is None and policy.source is None

    def test_validate_sql_is_picked_up_without_a_yaml_file(self, tmp_path):
        """A <table>.validate.sql alone is enough to run the query hook."""
        (tmp_path / "tables").mkdir()
        (tmp_path / "tables" / "codes.validate.sql").write_text("SELECT 0", encoding="utf-8")
        assert (
            load_table_policy(tmp_path, "codes").validation_sql == tmp_path / "tables" / "codes.validate.sql"
        )


class TestSample:
    def test_documented_sample_parses_and_uses_every_key(self, tmp_path):
        """example.yaml.sample is a valid policy exercising every rule kind and every section."""
        tables = tmp_path / "tables"
        tables.mkdir()
        shutil.copy(SAMPLE, tables / "countries.yaml")
        (tables / "countries.validate.sql").write_text("SELECT 0", encoding="utf-8")
        policy = load_table_policy(tmp_path, "countries")
        assert {r.kind for r in policy.rules} == {
            "required", "not_null", "unique", "type", "range", "allowed", "pattern", "row_count"
        }  # fmt: skip
        assert policy.ragged_rows is RaggedPolicy.ERROR
        assert policy.validation_schema == "ref" and policy.validation_sql is not None
        assert policy.sensitive_columns == {
            "email": SensitiveAction.HASH,
            "card_number": SensitiveAction.MASK,
        }
        assert any(r.severity is Severity.WARN for r in policy.rules)


class TestRules:
    def test_per_column_rules_expand_and_names_are_normalised(self, tmp_path):
        """A not_null over two header-style names gives one rule per normalised column."""
        write(tmp_path, "rules:\n  - {rule: not_null, columns: ['Country Code', '2nd Name']}\n")
        rules = load_table_policy(tmp_path, "t").rules
        assert [r.name for r in rules] == ["not_null(country_code)", "not_null(c_2nd_name)"]

    def test_values_are_parsed_into_their_types(self, tmp_path):
        """Ranges become Decimal or dates, types become kinds, regexes are compiled."""
        write(
            tmp_path,
            "rules:\n"
            "  - {rule: range, column: a, min: 0.5, max: 10}\n"
            "  - {rule: range, column: d, min: 2020-01-01}\n"
            "  - {rule: type, column: n, type: BigInt}\n"
            "  - {rule: pattern, column: c, regex: '[A-Z]+'}\n"
            "schema_evolution: {fullload: replace, append: add_columns}\n",
        )
        policy = load_table_policy(tmp_path, "t")
        number, day, kind, pattern = policy.rules
        assert (number.min, number.max) == (Decimal("0.5"), Decimal("10"))
        assert str(day.min) == "2020-01-01"
        assert kind.type is ColumnKind.BIGINT
        assert pattern.regex is not None and pattern.regex.fullmatch("AB")
        assert policy.evolution_for(LoadType.APPEND) is SchemaEvolution.ADD_COLUMNS

    @pytest.mark.parametrize(
        "text,message",
        [
            ("rulez: []\n", "unknown key 'rulez' (did you mean 'rules'?"),
            ("rules:\n  - {rule: not_nul, column: a}\n", "unknown rule 'not_nul'"),
            ("rules:\n  - {rule: not_null}\n", "needs 'column' or 'columns'"),
            ("rules:\n  - {rule: not_null, column: a, colour: red}\n", "unknown key 'colour'"),
            ("rules:\n  - {rule: allowed, column: a, values: [NO, SE]}\n", "quote every allowed value"),
            ("rules:\n  - {rule: type, column: a, type: money}\n", "type must be one of"),
            ("rules:\n  - {rule: range, column: a, min: soon}\n", "neither a number nor an ISO date"),
            ("rules:\n  - {rule: pattern, column: a, regex: '[A-'}\n", "unterminated character set"),
            ("rules:\n  - {rule: not_null, column: a, severity: fatal}\n", "'fatal' is not a valid Severity"),
            ("schema_evolution: sometimes\n", "'sometimes' is not a valid SchemaEvolution"),
            ("schema_evolution: {append: replace}\n", "only a fullload may redefine"),
            ("sensitive: {action: shred}\n", "'shred' is not a valid SensitiveAction"),
            ("validation: {sql_file: missing.sql}\n", "does not exist"),
            ("- just a list\n", "expected a mapping"),
        ],
    )
    def test_mistakes_are_refused_with_the_file_and_the_reason(self, tmp_path, text, message):
        """Every invalid key or value is a ConfigError naming the policy file and what is wrong."""
        write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            load_table_policy(tmp_path, "t")
        assert message in str(info.value)
        assert "t.yaml" in str(info.value)
