"""Settings: read once at start-up, validated, then passed down as one frozen object.

Precedence (lowest first): defaults < ``<CONFIG_DIR>/settings.yaml`` < ``.env`` < environment <
command-line flags. Every field is documented where it is declared and listed in
``.env.example`` and the README's configuration table. Start-up refuses what would silently
misbehave: unknown keys in settings.yaml (with a close-match suggestion), values that are not
finite, a HEALTH_TOKEN no client could send. Enumerations accept any case (``LOG_LEVEL=info``).
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import getpass
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from backend.errors import ConfigError
from backend.masking import mask_url, url_secrets
from backend.models import RaggedPolicy, TypePolicy

DEFAULT_CONFIG_DIR = Path("config")
SETTINGS_FILE_NAME = "settings.yaml"
DEFAULT_EXTENSIONS = (
    ".csv",
    ".txt",
    ".tsv",
    ".psv",
    ".xlsx",
    ".xlsm",
    ".xls",
    ".json",
    ".ndjson",
    ".jsonl",
    ".parquet",
    ".gz",
    ".bz2",
    ".xz",
    ".zst",
    ".zip",
)
#: Longest duration any "..._seconds" or interval setting may have: a day. Anything longer is a
#: typo, and `inf` (or 1e12) would make the loop's waits never end or overflow.
MAX_SECONDS = 86_400.0
#: Where a value came from, lowest precedence first (`check-config --json` reports it).
SOURCES = ("default", "settings.yaml", ".env", "environment", "flag")

# Only set while load_settings() builds a Settings object; lets the YAML source know which
# file to read without a module-level configuration object.
_yaml_values: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "_yaml_values", default=MappingProxyType({})
)


class _YamlSource(PydanticBaseSettingsSource):
    """Values from config/settings.yaml (keys are setting names, any case)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return _yaml_values.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        names = set(self.settings_cls.model_fields)
        return {k: v for k, v in _yaml_values.get().items() if k in names and v is not None}


class Settings(BaseSettings):
    """Every setting of the product. Field names are the environment variable names, lower-cased."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        env_file=".env",
        env_file_encoding="utf-8",
    )

    # --- database -----------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file data/refdata.db (schemas as attached files).",
    )
    data_schema: str = Field(default="ref", description="Schema of the live tables and tracking tables.")
    backup_schema: str = Field(default="bkp", description="Schema of the versioned backups.")
    db_host: str | None = Field(
        default=None, description="SQL Server host; used when DATABASE_URL is absent."
    )
    db_port: int | None = Field(default=None, description="SQL Server port (default 1433).")
    db_name: str | None = Field(default=None, description="SQL Server database name.")
    db_user: str | None = Field(default=None, description="SQL Server login.")
    db_password: SecretStr | None = Field(default=None, description="SQL Server password (never logged).")
    db_odbc_driver: str = Field(default="ODBC Driver 18 for SQL Server", description="ODBC driver name.")
    db_encrypt: bool = Field(default=True, description="Encrypt the SQL Server connection.")
    db_trust_server_certificate: bool = Field(
        default=False, description="Accept a self-signed SQL Server certificate (opt-in, logged)."
    )
    db_connect_timeout_seconds: float = Field(
        default=15.0, gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="Connection timeout."
    )
    db_statement_timeout_seconds: float = Field(
        default=0.0,
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="Per-statement timeout where supported (0: none).",
    )

    # --- ingest -------------------------------------------------------------------
    ingest_batch_size: int = Field(
        default=10000, ge=1, le=1_000_000, description="Rows per batch sent to the staging table."
    )
    ingest_batch_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Upper bound of one batch's size in bytes."
    )
    arrow_min_bytes: int = Field(
        default=1024 * 1024,
        ge=0,
        description="Files from this size on are read by the Arrow reader where the database takes Arrow.",
    )
    empty_as_null: bool = Field(default=True, description="An empty cell is stored as NULL (else '').")
    allow_empty_fullload: bool = Field(
        default=False, description="Let a header-only file fullload (empty) a table."
    )
    ragged_rows: RaggedPolicy = Field(
        default=RaggedPolicy.ERROR, description="Rows with too few/many fields: error | repair | skip."
    )
    type_policy: TypePolicy = Field(default=TypePolicy.TEXT, description="Column types: text | infer.")
    decode_errors: Literal["strict", "replace"] = Field(
        default="strict", description="Undecodable bytes: strict (file to error/) | replace (U+FFFD)."
    )
    sample_bytes: int = Field(default=1024 * 1024, ge=4096, description="Bytes read to detect the format.")
    max_decompressed_bytes: int = Field(
        default=50 * 1024**3,
        ge=1024 * 1024,
        description="Most bytes one compressed file may decompress to (decompression bombs stop here).",
    )
    max_compression_ratio: float = Field(
        default=200.0,
        gt=1,
        le=1_000_000,
        allow_inf_nan=False,
        description="Largest decompressed/compressed ratio, judged after the first 16 MiB.",
    )
    date_order: Literal["auto", "dmy", "mdy", "ymd"] = Field(
        default="auto", description="Order of day, month and year in ambiguous dates: auto | dmy | mdy | ymd."
    )
    created_by: str = Field(
        default_factory=getpass.getuser, description="Name written to Reference_Data_Cfg."
    )

    # --- watching -----------------------------------------------------------------
    dropoff_base_path: Path = Field(default=Path("dropoff"), description="Root of the dropoff folders.")
    data_dir: Path = Field(default=Path("data"), description="Folder for the SQLite files.")
    monitor_interval: float = Field(
        default=15.0,
        gt=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="Seconds between rescans (fractions allowed).",
    )
    stability_checks: int = Field(default=6, ge=1, description="Consecutive unchanged checks before loading.")
    min_file_age_seconds: float = Field(
        default=0.0,
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="Seconds a file must be seen unchanged by the daemon's own clock (never its mtime).",
    )
    force_polling: bool = Field(
        default=False, description="Rescans only, no filesystem events (network shares)."
    )
    accepted_extensions: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_EXTENSIONS, description="File name endings that are loaded (comma separated)."
    )
    workers: int = Field(default=2, ge=1, le=64, description="Files loaded in parallel.")
    lease_seconds: float = Field(
        default=120.0,
        gt=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="A claim whose owner has not written for this long is taken over.",
    )
    shutdown_timeout_seconds: float = Field(
        default=30.0, gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="Grace period on SIGTERM."
    )
    keep_versions: int = Field(default=0, ge=0, description="bkp versions kept per table (0: all).")
    processed_retention_days: int = Field(
        default=0, ge=0, description="Delete processed/ files older (0: never)."
    )

    # --- health and logs ----------------------------------------------------------
    health_enabled: bool = Field(
        default=True, description="Serve the status page (/) and /healthz, /readyz, /metrics, /status."
    )
    health_host: str = Field(default="127.0.0.1", description="Health server address.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="Health server port (0: any free).")
    health_token: SecretStr | None = Field(
        default=None, description="Bearer token for all but /healthz (no spaces around it)."
    )
    min_free_disk_mb: int = Field(default=100, ge=0, description="/readyz fails below this free space.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level: DEBUG | INFO | WARNING | ERROR."
    )
    log_format: Literal["console", "json"] = Field(
        default="console",
        description="Format of the lines on stderr: console (readable) | json (one object a line).",
    )
    log_file: Path | None = Field(
        default=None, description="Also write JSON lines to this rotating file (its folder must exist)."
    )
    config_dir: Path = Field(
        default=DEFAULT_CONFIG_DIR, description="Folder of settings.yaml and tables/*.yaml."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, _YamlSource(settings_cls))

    @field_validator("accepted_extensions", mode="before")
    @classmethod
    def _split_extensions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.replace(";", ",").split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            return tuple(("." + v.strip().lstrip(".")).lower() for v in value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", "date_order", "decode_errors", "ragged_rows", "type_policy", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        # Operators write LOG_FORMAT=JSON or RAGGED_ROWS=Skip; the meaning is the same.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("health_token", mode="before")
    @classmethod
    def _exact_token(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and text and text != text.strip():
            # Refused, not stripped: HTTP clients (our own `status` included) send the header value
            # without surrounding spaces, so such a token could never authenticate.
            raise ValueError(
                "has spaces or line breaks around it; no client can send them: remove them "
                "(refused rather than stripped so the token stays exactly what clients are given)"
            )
        return value or None

    @field_validator("data_schema", "backup_schema")
    @classmethod
    def _plain_schema(cls, value: str) -> str:
        if not value.isidentifier() or not value.isascii():
            raise ValueError("must be a plain ASCII identifier")
        return value

    @model_validator(mode="after")
    def _schemas_differ(self) -> Settings:
        if self.data_schema.lower() == self.backup_schema.lower():
            raise ValueError("DATA_SCHEMA and BACKUP_SCHEMA must differ")
        return self

    # --- derived values -----------------------------------------------------------
    @property
    def url(self) -> str:
        """The effective SQLAlchemy URL (with password; never log it, use `masked_url`)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        if self.db_host:
            return _mssql_url(self)
        return f"sqlite:///{(self.data_dir / 'refdata.db').as_posix()}"

    @property
    def masked_url(self) -> str:
        """The effective URL with its password and secret query values hidden."""
        try:
            return mask_url(self.url)
        except Exception:  # noqa: BLE001 - an unparsable URL must still never leak a secret
            return "<unparsable DATABASE_URL>"

    def secret_values(self) -> set[str]:
        """Every secret these settings hold: never to be printed (see `backend.masking`)."""
        found = {
            secret.get_secret_value().strip()
            for secret in (self.db_password, self.health_token)
            if secret is not None and secret.get_secret_value().strip()
        }
        with contextlib.suppress(ValueError):  # no SQL Server name: nothing more to find
            found |= url_secrets(self.url)
        return found

    def effective(self) -> dict[str, Any]:
        """All settings as printable values, secrets masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                value = str(value)
            elif hasattr(value, "value"):
                value = value.value
            elif isinstance(value, tuple):
                value = ",".join(value)
            out[name] = value
        out["database_url"] = self.masked_url
        return out


def _mssql_url(s: Settings) -> str:
    from sqlalchemy.engine import URL

    missing = [n for n in ("db_name",) if not getattr(s, n)]
    if missing:
        raise ValueError(f"{missing[0].upper()} is required when DB_HOST is set")
    query = {
        "driver": s.db_odbc_driver,
        "Encrypt": "yes" if s.db_encrypt else "no",
    }
    if s.db_trust_server_certificate:
        query["TrustServerCertificate"] = "yes"
    if not s.db_user:
        query["Trusted_Connection"] = "yes"
    return URL.create(
        "mssql+pyodbc",
        username=s.db_user or None,
        password=s.db_password.get_secret_value() if s.db_password else None,
        host=s.db_host,
        port=s.db_port,
        database=s.db_name,
        query=query,
    ).render_as_string(hide_password=False)


def load_settings(
    overrides: dict[str, Any] | None = None,
    *,
    env_file: Path | str | None = ".env",
    config_file: Path | str | None = None,
) -> Settings:
    """Build and validate the settings, or raise ConfigError naming the bad variable.

    Args:
        overrides: values from command-line flags (highest precedence); None values are ignored.
        env_file: the .env file to read (None: none).
        config_file: YAML defaults (default: ``<CONFIG_DIR>/settings.yaml`` if it exists, where
            CONFIG_DIR comes from the flags, the environment or .env, as it cannot come from the
            very file it locates).
    """
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    _path, yaml_values = _settings_yaml(flags, env_file, config_file)
    token = _yaml_values.set(yaml_values)
    try:
        settings = Settings(_env_file=env_file, **flags)  # type: ignore[call-arg]
        _ = settings.url  # validates the SQL Server variables early
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        # Never echo the input: it may be a password.
        raise ConfigError(f"invalid setting {name.upper()}: {err['msg']}") from None
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None
    finally:
        _yaml_values.reset(token)
    sources = setting_sources(overrides, env_file=env_file, config_file=config_file)
    if sources["config_dir"] != "default" and not settings.config_dir.is_dir():
        # A mistyped CONFIG_DIR would otherwise switch every table policy off without a word.
        raise ConfigError(
            f"CONFIG_DIR {settings.config_dir} is not a folder (set in {sources['config_dir']})"
        )
    return settings


def setting_sources(
    overrides: dict[str, Any] | None = None,
    *,
    env_file: Path | str | None = ".env",
    config_file: Path | str | None = None,
) -> dict[str, str]:
    """Where each setting's value came from: one of `SOURCES` (the highest that set it).

    Takes the same arguments as `load_settings`.
    """
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    environment = {k.lower() for k in os.environ}
    dotenv = _dotenv(env_file)
    _path, yaml_values = _settings_yaml(flags, env_file, config_file)
    out: dict[str, str] = {}
    for name in Settings.model_fields:
        if name in flags:
            out[name] = "flag"
        elif name in environment:
            out[name] = "environment"
        elif name in dotenv:
            out[name] = ".env"
        elif name in yaml_values:
            out[name] = "settings.yaml"
        else:
            out[name] = "default"
    return out


def settings_files(
    overrides: dict[str, Any] | None = None,
    *,
    env_file: Path | str | None = ".env",
    config_file: Path | str | None = None,
) -> dict[str, str | None]:
    """The settings.yaml and .env files that were read (None: not present)."""
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    path, _values = _settings_yaml(flags, env_file, config_file)
    env_path = Path(env_file) if env_file else None
    return {
        "settings.yaml": str(path) if path is not None else None,
        ".env": str(env_path) if env_path is not None and env_path.is_file() else None,
    }


def _dotenv(env_file: Path | str | None) -> dict[str, str | None]:
    if not env_file or not Path(env_file).is_file():
        return {}
    return {k.lower(): v for k, v in dotenv_values(env_file).items()}


def _settings_yaml(
    flags: Mapping[str, Any], env_file: Path | str | None, config_file: Path | str | None
) -> tuple[Path | None, dict[str, Any]]:
    """The settings.yaml to read (None: there is none) and its values, keys checked and lower-cased."""
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
    else:
        path = _config_dir(flags, env_file) / SETTINGS_FILE_NAME
        if not path.is_file():
            return None, {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of setting names to values")
    values = {str(k).lower(): v for k, v in loaded.items()}
    known = list(Settings.model_fields)
    for key in values:
        if key == "config_dir":
            raise ConfigError(
                f"{path}: config_dir cannot be set in the file it locates; set CONFIG_DIR in the "
                "environment or .env"
            )
        if key not in Settings.model_fields:
            raise ConfigError(f"{path}: unknown setting {key!r}{suggestion(key, known)}")
    return path, values


def _config_dir(flags: Mapping[str, Any], env_file: Path | str | None) -> Path:
    if flags.get("config_dir") is not None:
        return Path(flags["config_dir"])
    for key, value in os.environ.items():
        if key.lower() == "config_dir" and value:
            return Path(value)
    from_dotenv = _dotenv(env_file).get("config_dir")
    return Path(from_dotenv) if from_dotenv else DEFAULT_CONFIG_DIR


def suggestion(word: str, known: list[str]) -> str:
    """`` (did you mean 'workers'?)`` for a close match among `known`, else the allowed names."""
    close = difflib.get_close_matches(word.lower(), known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(sorted(known))})"
