"""Settings: defaults, precedence, validation, the SQL Server URL, and secrets never shown."""

from __future__ import annotations

import enum
import json
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
        "CONFIG_DIR",
        "HEALTH_TOKEN",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "LEASE_SECONDS",
        "WORKERS",
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
        assert s.accepted_extensions[:4] == (".csv", ".txt", ".tsv", ".psv")
        assert {".xlsx", ".json", ".parquet", ".gz", ".zip"} <= set(s.accepted_extensions)


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


class TestSettingsFile:
    def test_unknown_key_is_refused_with_the_file_and_a_suggestion(self, tmp_path):
        """`workerz: 5` in settings.yaml stops start-up naming the key, the file and `workers`."""
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "settings.yaml").write_text("workerz: 5\n")
        with pytest.raises(ConfigError) as info:
            load_settings(env_file=None)
        message = str(info.value)
        assert "workerz" in message and "settings.yaml" in message and "did you mean 'workers'" in message

    def test_config_dir_locates_settings_yaml(self, tmp_path, monkeypatch):
        """CONFIG_DIR (environment, .env or --config-dir) is where settings.yaml is read from."""
        etc = tmp_path / "etc"
        etc.mkdir()
        (etc / "settings.yaml").write_text("workers: 7\n")
        monkeypatch.setenv("CONFIG_DIR", str(etc))
        assert load_settings(env_file=None).workers == 7
        monkeypatch.delenv("CONFIG_DIR")
        env = tmp_path / ".env"
        env.write_text(f"CONFIG_DIR={etc}\n")
        assert load_settings(env_file=env).workers == 7
        assert load_settings({"config_dir": etc}, env_file=None).workers == 7

    def test_missing_config_dir_that_was_set_is_refused(self, tmp_path, monkeypatch):
        """A CONFIG_DIR that does not exist is an error, not a silent "no table policies"."""
        monkeypatch.setenv("CONFIG_DIR", str(tmp_path / "etc-typo"))
        with pytest.raises(ConfigError, match=r"CONFIG_DIR .*etc-typo is not a folder"):
            load_settings(env_file=None)

    def test_config_dir_inside_settings_yaml_is_refused(self, tmp_path):
        """settings.yaml cannot move the folder it lives in."""
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "settings.yaml").write_text("config_dir: /elsewhere\n")
        with pytest.raises(ConfigError, match="config_dir cannot be set"):
            load_settings(env_file=None)


class TestEnumerations:
    @pytest.mark.parametrize(
        "name,value,expected",
        [
            ("LOG_LEVEL", "info", "INFO"),
            ("LOG_LEVEL", "Debug", "DEBUG"),
            ("LOG_FORMAT", "JSON", "json"),
            ("DATE_ORDER", "DMY", "dmy"),
            ("DECODE_ERRORS", "Replace", "replace"),
            ("RAGGED_ROWS", "SKIP", "skip"),
            ("TYPE_POLICY", "Infer", "infer"),
        ],
    )
    def test_any_case_is_accepted(self, monkeypatch, name, value, expected):
        """Enumerations are case-insensitive: LOG_LEVEL=info is INFO."""
        monkeypatch.setenv(name, value)
        got = getattr(load_settings(env_file=None), name.lower())
        assert getattr(got, "value", got) == expected

    def test_an_unknown_value_lists_the_allowed_ones(self, monkeypatch):
        """LOG_FORMAT=yaml is refused naming the variable and the allowed values."""
        monkeypatch.setenv("LOG_FORMAT", "yaml")
        with pytest.raises(ConfigError, match=r"LOG_FORMAT.*'console' or 'json'"):
            load_settings(env_file=None)


class TestDangerousValues:
    @pytest.mark.parametrize(
        "name,value",
        [
            ("MONITOR_INTERVAL", "inf"),
            ("MONITOR_INTERVAL", "nan"),
            ("MONITOR_INTERVAL", "1e12"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "inf"),
            ("LEASE_SECONDS", "Infinity"),
            ("DB_CONNECT_TIMEOUT_SECONDS", "inf"),
            ("MIN_FILE_AGE_SECONDS", "inf"),
        ],
    )
    def test_values_that_would_stall_the_daemon_are_refused(self, monkeypatch, name, value):
        """Infinite, NaN or absurd durations stop start-up naming the variable."""
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=name):
            load_settings(env_file=None)

    @pytest.mark.parametrize("token", [" s3cret", "s3cret ", "s3cret\n", "   "])
    def test_a_token_with_surrounding_spaces_is_refused_without_echoing_it(self, monkeypatch, token):
        """HEALTH_TOKEN with spaces around it could never authenticate: refused, and the message hides it."""
        monkeypatch.setenv("HEALTH_TOKEN", token)
        with pytest.raises(ConfigError, match=r"HEALTH_TOKEN.*spaces") as info:
            load_settings(env_file=None)
        assert "s3cret" not in str(info.value)

    def test_an_empty_token_means_no_token(self, monkeypatch):
        """HEALTH_TOKEN= (empty) disables the token check rather than requiring an empty one."""
        monkeypatch.setenv("HEALTH_TOKEN", "")
        assert load_settings(env_file=None).health_token is None


class TestSources:
    def test_check_config_json_says_where_each_value_came_from(self, tmp_path, monkeypatch, capsys):
        """check-config --json reports default, settings.yaml, .env, environment and flag per setting."""
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "settings.yaml").write_text("workers: 3\nstability_checks: 2\n")
        (tmp_path / ".env").write_text("STABILITY_CHECKS=4\nLEASE_SECONDS=60\n")
        monkeypatch.setenv("MONITOR_INTERVAL", "5")
        capsys.readouterr()
        from backend.cli import main

        code = main(
            ["--env-file", str(tmp_path / ".env"), "check-config", "--json", "--database-url", "sqlite://"]
        )
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        settings = out["settings"]
        assert settings["WORKERS"] == {"value": 3, "source": "settings.yaml"}
        assert settings["STABILITY_CHECKS"] == {"value": 4, "source": ".env"}
        assert settings["LEASE_SECONDS"] == {"value": 60.0, "source": ".env"}
        assert settings["MONITOR_INTERVAL"] == {"value": 5.0, "source": "environment"}
        assert settings["DATABASE_URL"]["source"] == "flag"
        assert settings["KEEP_VERSIONS"] == {"value": 0, "source": "default"}
        assert out["files"]["settings.yaml"].endswith("settings.yaml")

    def test_check_config_refuses_a_bad_table_policy(self, tmp_path, capsys):
        """A typo in config/tables/<t>.yaml fails check-config (exit 2) naming the file and the key."""
        (tmp_path / "config" / "tables").mkdir(parents=True)
        (tmp_path / "config" / "tables" / "countries.yaml").write_text("ragged_rowz: skip\n")
        code, _out, err = run_cli(["check-config"], capsys)
        assert code == 2
        assert "countries.yaml" in err and "ragged_rowz" in err and "did you mean 'ragged_rows'" in err


class TestReadmeListsEveryValue:
    def test_every_setting_and_every_allowed_value_is_in_the_readme(self):
        """The README's configuration table names each variable and every value its enumerations allow."""
        import typing

        from backend.config import Settings

        readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
        rows = {
            line.split("|")[1].strip().strip("`").lower(): line
            for line in readme.splitlines()
            if line.startswith("| `")
        }
        missing = []
        for name, field in Settings.model_fields.items():
            row = rows.get(name)
            if row is None:
                missing.append(name)
                continue
            annotation = field.annotation
            values: list[str] = []
            if typing.get_origin(annotation) is typing.Literal:
                values = [str(v) for v in typing.get_args(annotation)]
            elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
                values = [str(m.value) for m in annotation]
            missing += [f"{name}={v}" for v in values if f"`{v}`" not in row]
        assert missing == []


class TestTablePolicyFiles:
    def test_every_policy_file_is_parsed_up_front(self, tmp_path):
        """check_table_policies reads each tables/*.yaml now and refuses a misspelt rule name."""
        from backend.policies import check_table_policies

        tables = tmp_path / "config" / "tables"
        tables.mkdir(parents=True)
        (tables / "good.yaml").write_text("ragged_rows: skip\n")
        assert check_table_policies(tmp_path / "config") == [tables / "good.yaml"]
        (tables / "bad.yaml").write_text("rules:\n  - {rule: not_nul, column: a}\n")
        with pytest.raises(ConfigError, match=r"bad\.yaml.*not_nul.*did you mean 'not_null'"):
            check_table_policies(tmp_path / "config")

    def test_a_yml_policy_file_is_refused(self, tmp_path):
        """countries.yml would never be read by the loader: refused at start-up instead of ignored."""
        from backend.policies import check_table_policies

        tables = tmp_path / "config" / "tables"
        tables.mkdir(parents=True)
        (tables / "countries.yml").write_text("ragged_rows: skip\n")
        with pytest.raises(ConfigError, match=r"countries\.yml: policy files must end in \.yaml"):
            check_table_policies(tmp_path / "config")
