"""Settings: read once at start-up, validated, then passed down as one frozen object.

Precedence (lowest first): defaults < ``config/settings.yaml`` < ``.env`` < environment <
command-line flags. Every field is documented where it is declared and listed in
``.env.example`` and the README's configuration table.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from backend.errors import ConfigError
from backend.masking import mask_url, url_secrets
from backend.models import RaggedPolicy, TypePolicy

DEFAULT_CONFIG_FILE = Path("config/settings.yaml")
DEFAULT_EXTENSIONS = (".csv", ".txt", ".tsv", ".psv")

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
    db_connect_timeout_seconds: float = Field(default=15.0, gt=0, description="Connection timeout.")
    db_statement_timeout_seconds: float = Field(
        default=0.0, ge=0, description="Per-statement timeout where supported (0: none)."
    )

    # --- ingest -------------------------------------------------------------------
    ingest_batch_size: int = Field(
        default=10000, ge=1, le=1_000_000, description="Rows per batch sent to the staging table."
    )
    ingest_batch_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Upper bound of one batch's size in bytes."
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
    date_order: Literal["auto", "dmy", "mdy", "ymd"] = Field(
        default="auto", description="Order of day and month in ambiguous dates."
    )
    created_by: str = Field(
        default_factory=getpass.getuser, description="Name written to Reference_Data_Cfg."
    )

    # --- watching -----------------------------------------------------------------
    dropoff_base_path: Path = Field(default=Path("dropoff"), description="Root of the dropoff folders.")
    data_dir: Path = Field(default=Path("data"), description="Folder for the SQLite files.")
    monitor_interval: float = Field(
        default=15.0, gt=0, description="Seconds between rescans (fractions allowed)."
    )
    stability_checks: int = Field(default=6, ge=1, description="Consecutive unchanged checks before loading.")
    min_file_age_seconds: float = Field(
        default=0.0,
        ge=0,
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
        default=120.0, gt=0, description="A claim whose owner has not written for this long is taken over."
    )
    shutdown_timeout_seconds: float = Field(default=30.0, gt=0, description="Grace period on SIGTERM.")
    keep_versions: int = Field(default=0, ge=0, description="bkp versions kept per table (0: all).")
    processed_retention_days: int = Field(
        default=0, ge=0, description="Delete processed/ files older (0: never)."
    )

    # --- health and logs ----------------------------------------------------------
    health_enabled: bool = Field(default=True, description="Serve /healthz, /readyz, /metrics, /status.")
    health_host: str = Field(default="127.0.0.1", description="Health server address.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="Health server port (0: any free).")
    health_token: SecretStr | None = Field(default=None, description="Bearer token for all but /healthz.")
    min_free_disk_mb: int = Field(default=100, ge=0, description="/readyz fails below this free space.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_format: Literal["console", "json"] = Field(default="console", description="Console log format.")
    log_file: Path | None = Field(default=None, description="Also write JSON lines to this rotating file.")
    config_dir: Path = Field(default=Path("config"), description="Folder of settings.yaml and tables/*.yaml.")

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
        config_file: YAML defaults (default: ``config/settings.yaml`` if it exists).
    """
    path = Path(config_file) if config_file else DEFAULT_CONFIG_FILE
    yaml_values: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of setting names to values")
        yaml_values = {str(k).lower(): v for k, v in loaded.items()}
    elif config_file:
        raise ConfigError(f"config file {path} does not exist")
    token = _yaml_values.set(yaml_values)
    try:
        clean = {k: v for k, v in (overrides or {}).items() if v is not None}
        settings = Settings(_env_file=env_file, **clean)  # type: ignore[call-arg]
        _ = settings.url  # validates the SQL Server variables early
        return settings
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        # Never echo the input: it may be a password.
        raise ConfigError(f"invalid setting {name.upper()}: {err['msg']}") from None
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None
    finally:
        _yaml_values.reset(token)
