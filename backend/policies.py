"""Per-table policies from ``config/tables/<table>.yaml``; tables without a file get the defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backend.errors import ConfigError
from backend.models import RaggedPolicy, TypePolicy


@dataclass(frozen=True)
class TablePolicy:
    """What one table accepts. Every field is optional in the YAML file."""

    table: str
    #: Overrides of the global settings for this table (None: use the setting).
    ragged_rows: RaggedPolicy | None = None
    type_policy: TypePolicy | None = None
    #: Raw rule mappings as written in the file (validated by `quality`).
    rules: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    source: Path | None = None


def load_table_policy(config_dir: Path, table: str) -> TablePolicy:
    """The policy of `table`, or the defaults when ``<config_dir>/tables/<table>.yaml`` is absent."""
    path = config_dir / "tables" / f"{table}.yaml"
    if not path.is_file():
        return TablePolicy(table=table)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    try:
        return TablePolicy(
            table=table,
            ragged_rows=RaggedPolicy(data["ragged_rows"]) if data.get("ragged_rows") else None,
            type_policy=TypePolicy(data["type_policy"]) if data.get("type_policy") else None,
            rules=tuple(data.get("rules") or ()),
            source=path,
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
