"""Settings: defaults, precedence, validation, the SQL Server URL, and secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import load_settings
from backend.errors import ConfigError
from tests.support import run_cli


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in (
        "DATABASE_URL",
        "DB_HOST",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD",
        "STABILITY_CHECKS",
        "MONITOR_INTERVAL",
        "ACCEPTED_EXTENSIONS",
        "INGEST_BATCH_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)


class TestDefaults:
    def test_defaults_are_the_documented_ones(self):
        """With nothing configured: SQLite under data/, ref/bkp, 15 s interval, 6 checks."""
        s = load_settings(env_file=None)
        assert s.url == "sqlite:///data/refdata.db"
        assert (s.data_schema, s.backup_schema) == ("ref", "bkp")
        assert (s.monitor_interval, s.stability_checks) == (15.0, 6)
        assert s.accepted_extensions == (".csv", ".txt", ".tsv", ".psv")


class TestPrecedence:
    def test_yaml_then_dotenv_then_environment_then_flags(self, tmp_path, monkeypatch):
        """Each source overrides the one before it: YAML < .env < environment < command-line flags."""
        yaml_file = tmp_path / "settings.yaml"
        yaml_file.write_text("monitor_interval: 1.5\nstability_checks: 2\nworkers: 3\ningest_batch_size: 7\n")
        env_file = tmp_path / ".env"
        env_file.write_text("STABILITY_CHECKS=4\nWORKERS=5\nINGEST_BATCH_SIZE=8\n")
        monkeypatch.setenv("WORKERS", "6")
        monkeypatch.setenv("INGEST_BATCH_SIZE", "9")
        s = load_settings({"ingest_batch_size": 10}, env_file=env_file, config_file=yaml_file)
        assert (s.monitor_interval, s.stability_checks, s.workers, s.ingest_batch_size) == (1.5, 4, 6, 10)

    def test_extensions_from_a_comma_separated_variable(self, monkeypatch):
        """ACCEPTED_EXTENSIONS accepts 'csv, .TXT' and normalises it."""
        monkeypatch.setenv("ACCEPTED_EXTENSIONS", "csv, .TXT")
        assert load_settings(env_file=None).accepted_extensions == (".csv", ".txt")


class TestValidation:
    def test_bad_value_names_the_variable(self, monkeypatch):
        """A non-numeric STABILITY_CHECKS fails with a one-line error naming STABILITY_CHECKS."""
        monkeypatch.setenv("STABILITY_CHECKS", "six")
        with pytest.raises(ConfigError, match="STABILITY_CHECKS"):
            load_settings(env_file=None)

    def test_same_schema_twice_is_refused(self):
        """DATA_SCHEMA and BACKUP_SCHEMA must differ."""
        with pytest.raises(ConfigError, match="must differ"):
            load_settings({"backup_schema": "ref"}, env_file=None)

    def test_missing_yaml_file_named_explicitly_is_an_error(self, tmp_path):
        """--config pointing at a missing file fails instead of silently using defaults."""
        with pytest.raises(ConfigError, match="does not exist"):
            load_settings(env_file=None, config_file=tmp_path / "nope.yaml")


class TestSqlServerUrl:
    def test_upstream_variables_build_a_pyodbc_url_with_encryption_on(self, monkeypatch):
        """db_host/db_name/db_user/db_password build mssql+pyodbc with Encrypt=yes and the ODBC 18 driver."""
        for key, value in {
            "db_host": "sql1",
            "db_name": "RefData",
            "db_user": "svc",
            "db_password": "p@ss;w0rd",
        }.items():
            monkeypatch.setenv(key, value)
        s = load_settings(env_file=None)
        assert s.url.startswith("mssql+pyodbc://svc:")
        assert "Encrypt=yes" in s.url and "ODBC+Driver+18" in s.url
        assert "TrustServerCertificate" not in s.url
        assert "p@ss" not in s.masked_url and "***" in s.masked_url

    def test_trust_server_certificate_is_opt_in(self, monkeypatch):
        """TrustServerCertificate=yes appears only when DB_TRUST_SERVER_CERTIFICATE is set."""
        monkeypatch.setenv("DB_HOST", "sql1")
        monkeypatch.setenv("DB_NAME", "RefData")
        monkeypatch.setenv("DB_TRUST_SERVER_CERTIFICATE", "true")
        assert "TrustServerCertificate=yes" in load_settings(env_file=None).url


class TestCheckConfigCommand:
    def test_prints_settings_with_the_password_masked(self, monkeypatch, capsys):
        """check-config prints every setting and never the password."""
        monkeypatch.setenv("DATABASE_URL", "postgresql://app:TopSecret42@db.example/ref")
        code, out, err = run_cli(["check-config"], capsys)
        assert code == 0
        assert "STABILITY_CHECKS=6" in out and "DATABASE_URL=postgresql://app:***@db.example/ref" in out
        assert "TopSecret42" not in out + err

    def test_bad_variable_gives_one_line_and_exit_code_2(self, monkeypatch, capsys):
        """A bad setting prints one line naming it and exits with 2."""
        monkeypatch.setenv("MONITOR_INTERVAL", "-1")
        code, _out, err = run_cli(["check-config"], capsys)
        assert code == 2
        assert err.strip().count("\n") == 0 and "MONITOR_INTERVAL" in err

    def test_password_never_echoed_in_a_validation_error(self, monkeypatch, capsys):
        """Even when the password itself is invalid input, the error does not print it."""
        monkeypatch.setenv("DATABASE_URL", "postgresql://app:TopSecret42@db.example/ref")
        monkeypatch.setenv("HEALTH_PORT", "TopSecret42")
        code, out, err = run_cli(["check-config"], capsys)
        assert code == 2 and "TopSecret42" not in out + err


def test_env_example_documents_every_setting():
    """.env.example lists every setting by its variable name."""
    from backend.config import Settings

    text = (Path(__file__).resolve().parent.parent / ".env.example").read_text(encoding="utf-8").upper()
    missing = [name.upper() for name in Settings.model_fields if f"{name.upper()}=" not in text]
    assert missing == []
