"""The product's own tables (tracking, audit events, reference configuration) and init-db.

The same objects exist as T-SQL scripts in ``sql/`` for a DBA; ``tests/db/test_schema.py``
keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

TRACKING_TABLE = "File_Monitor_Tracking"
EVENTS_TABLE = "File_Monitor_Events"
REFERENCE_CFG_TABLE = "Reference_Data_Cfg"
VERSIONS_TABLE = "File_Monitor_Versions"


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: Timestamps: DATETIME2 on SQL Server (DATETIME rounds to 3 ms and is the legacy type).
TIMESTAMP = sa.DateTime().with_variant(mssql.DATETIME2(), "mssql")  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Catalog:
    """The product's tables, bound to the configured data schema."""

    metadata: sa.MetaData
    tracking: sa.Table
    events: sa.Table
    reference_cfg: sa.Table
    versions: sa.Table
    data_schema: str
    backup_schema: str


#: Dialects whose options the catalog's tables carry (the filtered unique index).
_DIALECTS = ("sqlite", "postgresql", "mssql")


def build_catalog(data_schema: str, backup_schema: str, dialects: tuple[str, ...] = _DIALECTS) -> Catalog:
    """Describe the tracking, events and reference configuration tables in `data_schema`.

    `dialects`: the databases the tables may be created on. Open databases pass their own only:
    SQLAlchemy imports a dialect to check each option naming it (PostgreSQL's: 30 ms of a small
    load's start-up on SQLite, measured).
    """
    md = sa.MetaData()
    tracking = sa.Table(
        TRACKING_TABLE,
        md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("file_path", sa.Unicode(1024), nullable=False),
        sa.Column("file_name", sa.Unicode(400), nullable=False),
        sa.Column("file_size", sa.BigInteger),
        sa.Column("file_mtime", sa.Float),
        sa.Column("file_hash", sa.String(64)),  # SHA-256 of the bytes that were loaded
        sa.Column("load_type", sa.String(16), nullable=False),
        sa.Column("table_name", sa.Unicode(128)),
        sa.Column("is_reference_data", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column(
            "reference_config_inserted", sa.Boolean(create_constraint=False), nullable=False, default=False
        ),
        sa.Column("detected_encoding", sa.String(40)),
        sa.Column("detected_delimiter", sa.Unicode(8)),
        sa.Column("detected_quotechar", sa.Unicode(8)),
        sa.Column("detected_header", sa.Boolean(create_constraint=False)),
        sa.Column("detected_headers", sa.UnicodeText),  # JSON list of the original header cells
        sa.Column("detection", sa.UnicodeText),  # JSON of the whole detection result
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows_read", sa.BigInteger),
        sa.Column("rows_loaded", sa.BigInteger),
        sa.Column("rows_rejected", sa.BigInteger),
        sa.Column("rows_done", sa.BigInteger),  # progress while staging
        sa.Column("rows_estimated", sa.BigInteger),
        sa.Column("progress_percent", sa.Float),
        sa.Column("backup_version", sa.Integer),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP),
        sa.Column("processed_at", TIMESTAMP),
        sa.Column("error_stage", sa.String(40)),
        sa.Column("error_message", sa.UnicodeText),
        # Claiming: two daemons insert the same claim key; the unique index lets one win.
        sa.Column("claim_key", sa.String(200)),
        sa.Column("owner", sa.Unicode(200)),
        sa.Column("heartbeat_at", TIMESTAMP),
        sa.Column("cancel_requested", sa.Boolean(create_constraint=False), nullable=False, default=False),
        sa.Column("moved_to", sa.Unicode(1024)),
        sa.Column("schema_report", sa.UnicodeText),  # JSON: match %, missing / extra columns
        sa.Column("profile", sa.UnicodeText),  # JSON load profile
        # JSON {column: type}: how the table stores each column after this load, with the date
        # format and boolean spelling its values are written back in (see backend.load.convert).
        sa.Column("column_types", sa.UnicodeText),
        schema=data_schema,
    )
    sa.Index("ix_fmt_status", tracking.c.status)
    sa.Index("ix_fmt_created_at", tracking.c.created_at)
    sa.Index("ix_fmt_table_name", tracking.c.table_name)
    not_null = tracking.c.claim_key.isnot(None)
    where: dict[str, Any] = {f"{name}_where": not_null for name in dialects}
    sa.Index(
        "ux_fmt_claim_key",
        tracking.c.claim_key,
        unique=True,
        # Filtered: SQL Server treats NULLs as equal in a plain unique index.
        **where,
    )
    events = sa.Table(
        EVENTS_TABLE,
        md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tracking_id", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("details", sa.UnicodeText),  # JSON
        schema=data_schema,
    )
    sa.Index("ix_fme_tracking_id", events.c.tracking_id)
    sa.Index("ix_fme_at", events.c.at)
    reference_cfg = sa.Table(
        REFERENCE_CFG_TABLE,
        md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.Unicode(128), nullable=False, unique=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.Unicode(128), nullable=False),
        sa.Column("is_active", sa.Boolean(create_constraint=False), nullable=False, default=True),
        sa.Column("last_tracking_id", sa.BigInteger),
        schema=data_schema,
    )
    # One row per content a table has had: where its rows are (a whole table per version, moved
    # between ref and bkp as metadata, never copied) and which load made it.
    versions = sa.Table(
        VERSIONS_TABLE,
        md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("table_name", sa.Unicode(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("object_schema", sa.Unicode(128), nullable=False),
        sa.Column("object_name", sa.Unicode(128), nullable=False),
        # current: the live table's rows; kept: a backup version; dropped: removed by retention.
        sa.Column("state", sa.String(16), nullable=False),
        # Whether the version table is attached to its table's bkp parent (PostgreSQL) or stands
        # alone because its columns differ from the current definition.
        sa.Column("attached", sa.Boolean(create_constraint=False), nullable=False, default=True),
        sa.Column("load_id", sa.BigInteger, nullable=False),
        sa.Column("row_count", sa.BigInteger),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("replaced_at", TIMESTAMP),
        schema=data_schema,
    )
    sa.Index("ux_fmv_table_version", versions.c.table_name, versions.c.version, unique=True)
    return Catalog(md, tracking, events, reference_cfg, versions, data_schema, backup_schema)


def add_missing_columns(conn: sa.Connection, catalog: Catalog) -> list[str]:
    """Add the columns a newer release gave the product's tables to tables an older one made.

    Only nullable columns are ever added, so rows written before keep their meaning. Returns
    ``table.column`` of each column added.
    """
    added: list[str] = []
    inspector = sa.inspect(conn)
    preparer = conn.dialect.identifier_preparer
    for table in (catalog.tracking, catalog.events, catalog.reference_cfg, catalog.versions):
        have = {c["name"].lower() for c in inspector.get_columns(table.name, schema=table.schema)}
        for column in table.columns:
            if column.name.lower() in have or not column.nullable:
                continue
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} ADD {preparer.quote(column.name)} "
                f"{column.type.compile(dialect=conn.dialect)} NULL"
            )
            added.append(f"{table.name}.{column.name}")
    return added
