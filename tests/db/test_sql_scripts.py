"""The T-SQL scripts in sql/ describe the same tables and indexes as init-db."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.dialects import mssql

from backend.db.schema import build_catalog

SQL = Path(__file__).resolve().parents[2] / "sql"
SCRIPTS = {
    "File_Monitor_Tracking": "create_file_tracking_table.sql",
    "File_Monitor_Events": "create_file_events_table.sql",
    "Reference_Data_Cfg": "create_reference_data_cfg_table.sql",
    "File_Monitor_Versions": "create_file_versions_table.sql",
}
_COLUMN = re.compile(r"^\s*\[(\w+)\]\s+([A-Z0-9]+(?:\([^)]*\))?)(.*?)(?:,)?\s*(?:--.*)?$")


def script_columns(text: str) -> dict[str, tuple[str, bool]]:
    """column -> (type, nullable) from the CREATE TABLE block of a script."""
    block = text[text.index("CREATE TABLE") : text.index(");", text.index("CREATE TABLE"))]
    columns = {}
    for line in block.splitlines()[1:]:
        match = _COLUMN.match(line)
        if match:
            name, type_, rest = match.groups()
            columns[name] = (type_.upper(), "NOT NULL" not in rest.upper())
    return columns


def model_columns(table) -> dict[str, tuple[str, bool]]:
    dialect = mssql.dialect(deprecate_large_types=True)
    out = {}
    for column in table.columns:
        type_ = (
            column.type.compile(dialect=dialect).upper().replace("INTEGER", "INT").replace("(MAX)", "(MAX)")
        )
        out[column.name] = (type_, bool(column.nullable) and not column.primary_key)
    return out


@pytest.mark.parametrize("table_name", sorted(SCRIPTS))
def test_script_columns_match_the_model(table_name):
    """Every column of init-db's table is in the T-SQL script with the same type and nullability, and no
    more.
    """
    catalog = build_catalog("ref", "bkp")
    tables = (catalog.tracking, catalog.events, catalog.reference_cfg, catalog.versions)
    table = {t.name: t for t in tables}[table_name]
    text = (SQL / SCRIPTS[table_name]).read_text(encoding="utf-8")
    assert script_columns(text) == model_columns(table)


@pytest.mark.parametrize("table_name", sorted(SCRIPTS))
def test_script_creates_every_index_of_the_model(table_name):
    """Each index init-db creates exists in the script under the same name, columns and uniqueness."""
    catalog = build_catalog("ref", "bkp")
    tables = (catalog.tracking, catalog.events, catalog.reference_cfg, catalog.versions)
    table = {t.name: t for t in tables}[table_name]
    text = (SQL / SCRIPTS[table_name]).read_text(encoding="utf-8")
    for index in table.indexes:
        cols = ", ".join(f"[{c.name}]" for c in index.columns)
        unique = "UNIQUE " if index.unique else ""
        assert f"CREATE {unique}INDEX [{index.name}] ON [ref].[{table_name}] ({cols})" in text
        if index.dialect_options["mssql"]["where"] is not None:
            assert f"({cols}) WHERE [claim_key] IS NOT NULL" in text


def test_schemas_script_creates_both_schemas_and_a_least_privilege_role():
    """create_schemas.sql creates ref, bkp and a role limited to those schemas (no db_owner)."""
    text = (SQL / "create_schemas.sql").read_text(encoding="utf-8")
    assert "CREATE SCHEMA [ref]" in text and "CREATE SCHEMA [bkp]" in text
    assert "CREATE ROLE [refdata_ingest]" in text
    assert "ON SCHEMA::[ref] TO [refdata_ingest]" in text and "ON SCHEMA::[bkp] TO [refdata_ingest]" in text
    assert "db_owner" not in text.split("--")[0]
