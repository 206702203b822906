"""Per-table policies from ``config/tables/<table>.yaml``; tables without a file get the defaults.

Every key is optional; ``config/tables/example.yaml.sample`` documents them all. The file is read
once per load and checked strictly: an unknown key, rule or value is a ConfigError naming the
file, because a typo must never silently switch a rule off.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from backend.errors import ConfigError
from backend.models import ColumnKind, LoadType, RaggedPolicy, TypePolicy
from backend.naming import normalize_identifier


class SchemaEvolution(str, Enum):
    """What a load may do when the file's columns differ from the existing table's."""

    FAIL = "fail"
    ADD_COLUMNS = "add_columns"
    IGNORE_EXTRA = "ignore_extra"
    REPLACE = "replace"


class TypeMismatch(str, Enum):
    """What a load does when a value does not fit its typed column exactly."""

    #: The file is refused, naming the line, the column and the value; nothing changes.
    REFUSE = "refuse"
    #: The column becomes text in ``ref`` and ``bkp``, every stored value written back as it was.
    WIDEN_TO_TEXT = "widen_to_text"


class FullloadWins(str, Enum):
    """Which of a table's fullloads becomes its current contents (issue 14, item 1)."""

    #: The file with the newest date stamp in its name (then mtime, then name); an older file
    #: arriving after a newer one is loaded as a bkp version only.
    NEWEST_STAMP = "newest_stamp"
    #: Whatever arrives last becomes current, whatever its name says.
    LAST_ARRIVAL = "last_arrival"


class Severity(str, Enum):
    ERROR = "error"
    WARN = "warn"


class SensitiveAction(str, Enum):
    """What happens to a column that holds personal or payment data."""

    FLAG = "flag"
    REFUSE = "refuse"
    HASH = "hash"
    MASK = "mask"


#: Rule names and the keys each one accepts besides ``rule``, ``severity`` and ``column(s)``.
RULE_KEYS: dict[str, frozenset[str]] = {
    "required": frozenset(),
    "not_null": frozenset(),
    "unique": frozenset(),
    "type": frozenset({"type", "format"}),
    "range": frozenset({"min", "max"}),
    "allowed": frozenset({"values"}),
    "pattern": frozenset({"regex"}),
    "row_count": frozenset({"min_rows", "min_percent_of_current", "max_percent_of_current"}),
}
#: Rules checked once per column named (a list means "each of these columns").
PER_COLUMN_RULES = frozenset({"not_null", "type", "range", "allowed", "pattern"})
TYPE_NAMES = {
    "integer": ColumnKind.INTEGER,
    "bigint": ColumnKind.BIGINT,
    "decimal": ColumnKind.DECIMAL,
    "number": ColumnKind.DECIMAL,
    "boolean": ColumnKind.BOOLEAN,
    "date": ColumnKind.DATE,
    "datetime": ColumnKind.DATETIME,
}
_TOP_KEYS = frozenset(
    {
        "ragged_rows",
        "type_policy",
        "type_mismatch",
        "schema_evolution",
        "fullload_wins",
        "rules",
        "validation",
        "sensitive",
        "sheet",
        "header",
        "trailer_detection",
        "stacked_tables",
    }
)
#: ``header:`` values and what `detect(header=...)` gets for each (issue 16, item 8).
HEADER_CHOICES: dict[str, bool | None] = {"auto": None, "present": True, "absent": False}
#: ``stacked_tables:`` values (None: a file of several stacked tables is refused).
STACKED_TABLES_CHOICES = ("first", "largest")
_VALIDATION_KEYS = frozenset({"procedure", "schema", "sql_file"})
_SENSITIVE_KEYS = frozenset({"detect", "action", "columns"})


@dataclass(frozen=True)
class Rule:
    """One validation rule, parsed and checked; `columns` are normalised column names."""

    kind: str
    columns: tuple[str, ...] = ()
    severity: Severity = Severity.ERROR
    type: ColumnKind | None = None
    format: str | None = None
    min: Decimal | date | datetime | None = None
    max: Decimal | date | datetime | None = None
    values: frozenset[str] = frozenset()
    regex: re.Pattern[str] | None = None
    min_rows: int | None = None
    min_percent_of_current: float | None = None
    max_percent_of_current: float | None = None

    @property
    def name(self) -> str:
        """Short label for reports: ``not_null(code)``, ``unique(a,b)``, ``row_count``."""
        return f"{self.kind}({','.join(self.columns)})" if self.columns else self.kind


@dataclass(frozen=True)
class TablePolicy:
    """What one table accepts. Every field is optional in the YAML file."""

    table: str
    #: Overrides of the global settings for this table (None: use the setting).
    ragged_rows: RaggedPolicy | None = None
    type_policy: TypePolicy | None = None
    type_mismatch: TypeMismatch = TypeMismatch.REFUSE
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    #: Schema evolution per load type; both default to `fail`.
    evolution_fullload: SchemaEvolution = SchemaEvolution.FAIL
    evolution_append: SchemaEvolution = SchemaEvolution.FAIL
    #: Which fullload stays current when an older file arrives after a newer one.
    fullload_wins: FullloadWins = FullloadWins.NEWEST_STAMP
    #: SQL Server: call ``<validation_schema>.sp_ref_validate_<table>`` when it exists.
    validation_procedure: bool = True
    #: Schema of that procedure (None: the data schema).
    validation_schema: str | None = None
    #: A query file run against the staging table on every dialect (None: none).
    validation_sql: Path | None = None
    detect_sensitive: bool = True
    #: Action for every column the detector flags.
    sensitive_action: SensitiveAction = SensitiveAction.FLAG
    #: Per-column actions; they win over `sensitive_action` and apply even to unflagged columns.
    sensitive_columns: dict[str, SensitiveAction] = field(default_factory=dict)
    #: The file's first table row is its header (True), there is none (False), or detect (None).
    header: bool | None = None
    #: False: no row at the end of a file is ever dropped as a trailer (issue 16, item 9).
    trailer_detection: bool = True
    #: ``first`` / ``largest``: load that one of several stacked tables; None: refuse the file.
    stacked_tables: str | None = None
    source: Path | None = None
    #: The worksheet a workbook loads from: its name or 0-based index (None: the first visible).
    sheet: str | int | None = None

    def evolution_for(self, load_type: LoadType) -> SchemaEvolution:
        return self.evolution_fullload if load_type is LoadType.FULLLOAD else self.evolution_append


def column_name(text: str) -> str:
    """A column as an operator may write it (original header or SQL name), normalised like a header."""
    name = normalize_identifier(str(text))
    return "c_" + name if name[:1].isdigit() else name


def load_table_policy(config_dir: Path, table: str) -> TablePolicy:
    """The policy of `table`, or the defaults when ``<config_dir>/tables/<table>.yaml`` is absent.

    A ``<table>.validate.sql`` next to it is picked up even without a YAML file.

    Raises:
        ConfigError: the file is not valid YAML or holds an unknown or invalid key.
    """
    tables_dir = config_dir / "tables"
    path = tables_dir / f"{table}.yaml"
    default_sql = tables_dir / f"{table}.validate.sql"
    if not path.is_file():
        return TablePolicy(table=table, validation_sql=default_sql if default_sql.is_file() else None)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    try:
        return _parse(data, table, path, default_sql)
    except (ValueError, TypeError, re.error) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def check_table_policies(config_dir: Path) -> list[Path]:
    """Parse every ``<config_dir>/tables/*.yaml`` now, so a typo stops start-up, not a load hours later.

    Returns:
        The policy files found.

    Raises:
        ConfigError: a file is invalid (naming the file and the key), or a policy file is named
            ``*.yml``, which the loader would never read.
    """
    tables_dir = config_dir / "tables"
    if not tables_dir.is_dir():
        return []
    for stray in sorted(tables_dir.glob("*.yml")):
        raise ConfigError(f"{stray}: policy files must end in .yaml (this one would never be read)")
    found = sorted(tables_dir.glob("*.yaml"))
    for path in found:
        load_table_policy(config_dir, path.stem)
    return found


def _parse(data: dict[str, Any], table: str, path: Path, default_sql: Path) -> TablePolicy:
    _only(data, _TOP_KEYS, "top level")
    full, append = _evolution(data.get("schema_evolution"))
    validation = _mapping(data.get("validation"), "validation")
    _only(validation, _VALIDATION_KEYS, "validation")
    sensitive = _mapping(data.get("sensitive"), "sensitive")
    _only(sensitive, _SENSITIVE_KEYS, "sensitive")
    sql_file = validation.get("sql_file")
    sql_path: Path | None
    if sql_file is not None:
        sql_path = path.parent / str(sql_file)
        if not sql_path.is_file():
            raise ValueError(f"validation.sql_file {sql_file!r} does not exist next to the policy")
    else:
        sql_path = default_sql if default_sql.is_file() else None
    rules_data = data.get("rules") or []
    if not isinstance(rules_data, list):
        raise ValueError("rules must be a list")
    return TablePolicy(
        table=table,
        ragged_rows=RaggedPolicy(data["ragged_rows"]) if data.get("ragged_rows") else None,
        type_policy=TypePolicy(data["type_policy"]) if data.get("type_policy") else None,
        type_mismatch=TypeMismatch(data.get("type_mismatch", "refuse")),
        rules=tuple(rule for i, item in enumerate(rules_data, 1) for rule in parse_rule(item, i)),
        evolution_fullload=full,
        evolution_append=append,
        fullload_wins=FullloadWins(data.get("fullload_wins", "newest_stamp")),
        validation_procedure=bool(validation.get("procedure", True)),
        validation_schema=str(validation["schema"]) if validation.get("schema") else None,
        validation_sql=sql_path,
        detect_sensitive=bool(sensitive.get("detect", True)),
        sensitive_action=SensitiveAction(sensitive.get("action", "flag")),
        sensitive_columns={
            column_name(k): SensitiveAction(v)
            for k, v in _mapping(sensitive.get("columns"), "columns").items()
        },
        header=_choice(data, "header", HEADER_CHOICES, "auto"),
        trailer_detection=_flag(data, "trailer_detection"),
        stacked_tables=_choice(data, "stacked_tables", {c: c for c in STACKED_TABLES_CHOICES}, None),
        source=path,
        sheet=_sheet(data.get("sheet")),
    )


def _sheet(value: Any) -> str | int | None:
    # YAML reads `sheet: 2` as an int (an index) and `sheet: "2"` as a name; both are meant.
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"sheet must be a sheet name or a 0-based index, not {value!r}")


def _evolution(value: Any) -> tuple[SchemaEvolution, SchemaEvolution]:
    if value is None:
        return SchemaEvolution.FAIL, SchemaEvolution.FAIL
    if isinstance(value, str):
        chosen = SchemaEvolution(value)
        # For an append, `replace` fails with its own reason: only a fullload may redefine (evolve.decide).
        return chosen, chosen
    mapping = _mapping(value, "schema_evolution")
    _only(mapping, {"fullload", "append"}, "schema_evolution")
    full = SchemaEvolution(mapping.get("fullload", "fail"))
    append = SchemaEvolution(mapping.get("append", "fail"))
    if append is SchemaEvolution.REPLACE:
        raise ValueError("schema_evolution.append cannot be 'replace': only a fullload may redefine a table")
    return full, append


def parse_rule(item: Any, position: int) -> list[Rule]:
    """One ``rules:`` entry as Rule objects (a per-column rule over N columns gives N rules)."""
    where = f"rules[{position}]"
    if not isinstance(item, dict) or "rule" not in item:
        raise ValueError(f"{where}: expected a mapping with a 'rule' key")
    kind = str(item["rule"])
    if kind not in RULE_KEYS:
        raise ValueError(f"{where}: unknown rule {kind!r}{_close_match(kind, RULE_KEYS)}")
    _only(item, RULE_KEYS[kind] | {"rule", "severity", "column", "columns"}, where)
    columns = _columns(item, where)
    if kind != "row_count" and not columns:
        raise ValueError(f"{where}: rule {kind} needs 'column' or 'columns'")
    base: dict[str, Any] = {"kind": kind, "severity": Severity(item.get("severity", "error"))}
    if kind == "type":
        type_name = str(item.get("type", "")).lower()
        if type_name not in TYPE_NAMES:
            raise ValueError(f"{where}: type must be one of {', '.join(TYPE_NAMES)}")
        base.update(type=TYPE_NAMES[type_name], format=item.get("format"))
    elif kind == "range":
        if item.get("min") is None and item.get("max") is None:
            raise ValueError(f"{where}: range needs 'min' or 'max'")
        base.update(min=_bound(item.get("min"), where), max=_bound(item.get("max"), where))
    elif kind == "allowed":
        base.update(values=_allowed(item.get("values"), where))
    elif kind == "pattern":
        base.update(regex=re.compile(str(item["regex"])))
    elif kind == "row_count":
        base.update(
            min_rows=int(item["min_rows"]) if item.get("min_rows") is not None else None,
            min_percent_of_current=_float(item.get("min_percent_of_current")),
            max_percent_of_current=_float(item.get("max_percent_of_current")),
        )
    if kind in PER_COLUMN_RULES:
        return [Rule(columns=(c,), **base) for c in columns]
    return [Rule(columns=columns, **base)]


def _columns(item: dict[str, Any], where: str) -> tuple[str, ...]:
    raw = item.get("columns", item.get("column"))
    if raw is None:
        return ()
    names = [raw] if isinstance(raw, str) else list(raw)
    columns = tuple(column_name(n) for n in names)
    if not all(columns):
        raise ValueError(f"{where}: column names must have letters or digits")
    return columns


def _bound(value: Any, where: str) -> Decimal | date | datetime | None:
    if value is None or isinstance(value, (date, datetime)):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{where}: range bounds must be numbers or dates")
    text = str(value)
    try:
        return Decimal(text)
    except InvalidOperation:
        pass
    try:
        return datetime.fromisoformat(text) if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: range bound {text!r} is neither a number nor an ISO date") from None


def _allowed(values: Any, where: str) -> frozenset[str]:
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where}: 'values' must be a non-empty list")
    if any(isinstance(v, bool) or v is None for v in values):
        # YAML 1.1 reads NO, Yes, off, ~ as booleans/null: Norway's code would become False.
        raise ValueError(f"{where}: quote every allowed value (YAML reads NO/yes/on/~ as booleans or null)")
    return frozenset(str(v) for v in values)


def _choice(data: dict[str, Any], key: str, choices: dict[str, Any], default: str | None) -> Any:
    value = data.get(key, default)
    if value is None:
        return None
    # YAML reads a bare `no`/`off` as False: ask for the word rather than guess what was meant.
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return choices[value]


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, True)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping")
    return value


def _only(data: dict[str, Any], allowed: frozenset[str] | set[str], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}{_close_match(unknown[0], allowed)}")


def _close_match(word: str, allowed: Any) -> str:
    names = sorted(str(a) for a in allowed)
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f" ({hint}allowed: {', '.join(names)})"
