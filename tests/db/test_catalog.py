"""The catalog an open database builds carries its own dialect's options and no other's."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateIndex

from backend.db.schema import TRACKING_TABLE, build_catalog
from tests.support import make_settings, open_db

CLAIM_INDEX = "ux_fmt_claim_key"


def test_the_claim_key_index_is_filtered_on_the_database_in_use(tmp_path: Path, db_url: str) -> None:
    """init-db creates the unique claim index with its WHERE, though the catalog names only the
    open database's dialect (so that the others are not imported)."""
    db = open_db(make_settings(tmp_path, db_url))
    try:
        name = db.adapter.name
        index = next(i for i in db.catalog.tracking.indexes if i.name == CLAIM_INDEX)
        assert index.dialect_options[name]["where"] is not None
        with db.read() as conn:
            found = sa.inspect(conn).get_indexes(TRACKING_TABLE, schema=db.catalog.data_schema)
        claim = next(i for i in found if i["name"] == CLAIM_INDEX)
        assert claim["unique"]
        assert "claim_key IS NOT NULL" in str(claim.get("dialect_options", {}).get(f"{name}_where"))
    finally:
        db.dispose()


def test_a_sql_server_catalog_filters_the_claim_index() -> None:
    """SQL Server treats NULLs as equal in a plain unique index: its catalog keeps the WHERE."""
    catalog = build_catalog("ref", "bkp", ("mssql",))
    index = next(i for i in catalog.tracking.indexes if i.name == CLAIM_INDEX)
    ddl = str(CreateIndex(index).compile(dialect=mssql.dialect()))  # type: ignore[no-untyped-call]
    assert ddl.endswith("(claim_key) WHERE claim_key IS NOT NULL")
