"""PostgreSQL (psycopg 3): versions are partitions that change parents; rows arrive by COPY.

``ref.<table>`` is a partitioned parent (LIST on ``_version``) holding exactly one partition, the
current version; ``bkp.<table>`` is a partitioned parent holding the kept ones. A fullload loads a
new table (``bkp.<table>__v<N>``, with a CHECK on ``_version`` so that ATTACH needs no scan), then,
in the same short-locked end of the transaction, detaches the current partition, attaches it to
bkp and attaches the new one. Views and grants bind to the parent, so they outlive every swap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from backend import faults
from backend.db.adapter import (
    BaseAdapter,
    Rows,
    Sink,
    Swap,
    WriteSpec,
    text_width,
    version_name,
)
from backend.db.expressions import iso_castable, keep_empty, literal_sql, mask_sql, render_boolean
from backend.models import ColumnKind, ColumnType

if TYPE_CHECKING:
    from backend.config import Settings
    from backend.db.schema import Catalog

# PostgreSQL's table fingerprint: the relation's oid and its live columns (name, type, type
# modifier such as a varchar length, NOT NULL); no row means no such table. The relkinds are
# those SQLAlchemy's has_table accepts.
_PG_FINGERPRINT = sa.text(
    "SELECT c.oid, a.attname, a.atttypid, a.atttypmod, a.attnotnull "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE n.nspname = :schema AND c.relname = :name AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
    "ORDER BY a.attnum"
)


_CHILDREN = sa.text(
    "SELECT i.inhrelid::regclass::text FROM pg_catalog.pg_inherits i "
    "WHERE i.inhparent = CAST(:parent AS regclass)"
)
_COLUMNS = sa.text(
    "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = CAST(:table AS regclass) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


_DEPENDENT_VIEWS = sa.text(
    "SELECT DISTINCT v.oid::regclass::text, pg_catalog.pg_get_viewdef(v.oid) "
    "FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid "
    "JOIN pg_catalog.pg_class v ON v.oid = r.ev_class "
    "WHERE d.refobjid = CAST(:table AS regclass) AND v.oid <> d.refobjid AND v.relkind = 'v'"
)
_GRANTS = sa.text(
    "SELECT grantee, privilege_type FROM information_schema.role_table_grants "
    "WHERE table_schema = :schema AND table_name = :table AND grantee <> current_user"
)


_RELKIND = sa.text(
    "SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relname = :name"
)


def _exists(conn: Connection, schema: str, name: str) -> bool:
    return bool(conn.execute(_PG_FINGERPRINT, {"schema": schema, "name": name}).first())


def _columns(conn: Connection, quoted: str) -> dict[str, str]:
    return {name: type_ for name, type_ in conn.execute(_COLUMNS, {"table": quoted}).all()}


def _align_columns(conn: Connection, parent: str, model: str) -> None:
    """Give the (empty) partitioned `parent` exactly the columns of the table `model`."""
    have, want = _columns(conn, parent), _columns(conn, model)
    preparer = conn.dialect.identifier_preparer
    if have.keys() - want.keys():
        # A redefinition (schema_evolution: replace): the parent is made anew in the file's column
        # order, as the table was before versions were partitions (a view on it must be dropped
        # first: PostgreSQL says so, and the file is refused with that reason).
        conn.exec_driver_sql(f"DROP TABLE {parent}")
        conn.exec_driver_sql(f"CREATE TABLE {parent} (LIKE {model}) PARTITION BY LIST (_version)")
        return
    for name, type_ in want.items():
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE {parent} ADD COLUMN {preparer.quote(name)} {type_}")
        elif have[name] != type_:
            conn.exec_driver_sql(
                f"ALTER TABLE {parent} ALTER COLUMN {preparer.quote(name)} TYPE {type_} USING NULL"
            )


#: System columns every PostgreSQL table has: ``CREATE TABLE t (xmin text)`` fails with "column
#: name conflicts with a system column name" (42701). ``oid`` stopped being one in PostgreSQL 12.
POSTGRESQL_SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})


_PG_PARTS = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "HH24", "%M": "MI", "%S": "SS", "%f": "US"}


class PostgreSQLAdapter(BaseAdapter):
    name = "postgresql"
    driver_module = "psycopg"
    max_identifier_length = 63
    reserved_column_names = POSTGRESQL_SYSTEM_COLUMNS

    def create_engine(self, url: URL, settings: Settings) -> Engine:
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {
            "connect_timeout": max(1, int(settings.db_connect_timeout_seconds)),
            "application_name": "refdata-monitor",
        }
        if settings.db_statement_timeout_seconds:
            ms = int(settings.db_statement_timeout_seconds * 1000)
            connect_args["options"] = f"-c statement_timeout={ms}"
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    def text_type(self, max_length: int) -> sa.types.TypeEngine[Any]:
        width = text_width(max_length)
        return sa.Text() if width is None else sa.String(width)

    commits_while_loading = False
    arrow_native = True  # _ArrowCopy: Arrow arrays -> Arrow's CSV writer -> COPY

    @contextlib.contextmanager
    def writer(self, conn: Connection, table: sa.Table, spec: WriteSpec) -> Iterator[Sink]:
        copy = _ArrowCopy(conn, table, spec)
        try:
            yield copy
        except BaseException as exc:
            copy.close(exc)
            raise
        copy.close(None)

    def version_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        # Every version table lives in bkp; only its parent changes (ref.<table> while current).
        return catalog.backup_schema, version_name(table, version, self.max_identifier_length)

    def current_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        return self.version_place(catalog, table, version)

    def kept_place(self, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        return self.version_place(catalog, table, version)

    def set_aside(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int
    ) -> None:
        # PostgreSQL keeps a version where it was loaded (`kept_place` is `version_place`): it stays
        # a table of its own, detached, until retention drops it.
        return None

    def prepare_version(self, conn: Connection, new: sa.Table, version: int) -> None:
        """The CHECK that implies the partition bound: ATTACH then needs no validation scan."""
        preparer = conn.dialect.identifier_preparer
        check = preparer.quote(version_name(f"{new.name}_ck", version, self.max_identifier_length))
        target = preparer.format_table(new)
        conn.exec_driver_sql(f"ALTER TABLE {target} ADD CONSTRAINT {check} CHECK (_version = {int(version)})")

    def swap_versions(
        self, conn: Connection, catalog: Catalog, *, table: str, new: sa.Table, version: int, old: int | None
    ) -> Swap:
        preparer = conn.dialect.identifier_preparer
        live = f"{preparer.quote_schema(catalog.data_schema)}.{preparer.quote(table)}"
        backup = f"{preparer.quote_schema(catalog.backup_schema)}.{preparer.quote(table)}"
        new_name = preparer.format_table(new)
        if not _exists(conn, catalog.data_schema, table):
            conn.exec_driver_sql(f"CREATE TABLE {live} (LIKE {new_name}) PARTITION BY LIST (_version)")
        swap = Swap()
        old_name = None
        if old is not None:
            old_name = self._quoted(preparer, catalog, table, old)
            conn.exec_driver_sql(f"ALTER TABLE {live} DETACH PARTITION {old_name}")
        faults.hit("publish.swap")
        # The parent has no partition now: changing its columns to the new definition costs nothing.
        _align_columns(conn, live, new_name)
        conn.exec_driver_sql(f"ALTER TABLE {live} ATTACH PARTITION {new_name} FOR VALUES IN ({int(version)})")
        if old is not None and old_name is not None:
            rebuilt = False
            if not _exists(conn, catalog.backup_schema, table):
                conn.exec_driver_sql(f"CREATE TABLE {backup} (LIKE {old_name}) PARTITION BY LIST (_version)")
            elif _columns(conn, backup) != _columns(conn, old_name):
                # A new definition: the versions kept so far stand alone, a new parent takes this one.
                for (child,) in conn.execute(_CHILDREN, {"parent": backup}).all():
                    conn.exec_driver_sql(f"ALTER TABLE {backup} DETACH PARTITION {child}")
                conn.exec_driver_sql(f"DROP TABLE {backup}")
                conn.exec_driver_sql(f"CREATE TABLE {backup} (LIKE {old_name}) PARTITION BY LIST (_version)")
                rebuilt = True
            conn.exec_driver_sql(
                f"ALTER TABLE {backup} ATTACH PARTITION {old_name} FOR VALUES IN ({int(old)})"
            )
            swap = Swap(old_attached=True, others_detached=rebuilt)
        return swap

    def adopt_current(self, conn: Connection, catalog: Catalog, table: str, version: int) -> tuple[str, str]:
        """The plain ``ref.<table>`` moves to bkp as version `version` and becomes the only
        partition of a new partitioned ``ref.<table>``; views on it and grants are carried over."""
        preparer = conn.dialect.identifier_preparer
        live = f"{preparer.quote_schema(catalog.data_schema)}.{preparer.quote(table)}"
        views = conn.execute(_DEPENDENT_VIEWS, {"table": live}).all()
        grants = conn.execute(_GRANTS, {"schema": catalog.data_schema, "table": table}).all()
        schema, name = self.version_place(catalog, table, version)
        conn.exec_driver_sql(f"ALTER TABLE {live} SET SCHEMA {preparer.quote_schema(schema)}")
        moved = f"{preparer.quote_schema(schema)}.{preparer.quote(table)}"
        conn.exec_driver_sql(f"ALTER TABLE {moved} RENAME TO {preparer.quote(name)}")
        kept = sa.Table(name, sa.MetaData(), schema=schema)
        self.prepare_version(conn, kept, version)
        target = preparer.format_table(kept)
        conn.exec_driver_sql(f"CREATE TABLE {live} (LIKE {target}) PARTITION BY LIST (_version)")
        conn.exec_driver_sql(f"ALTER TABLE {live} ATTACH PARTITION {target} FOR VALUES IN ({int(version)})")
        # The definitions were read while they still named ref.<table>: now they bind to the parent.
        for view, definition in views:
            conn.exec_driver_sql(f"CREATE OR REPLACE VIEW {view} AS {definition}")
        for grantee, privilege in grants:
            conn.exec_driver_sql(f"GRANT {privilege} ON {live} TO {preparer.quote(grantee)}")
        return schema, name

    def in_version_layout(self, conn: Connection, catalog: Catalog, table: str) -> bool:
        kind = conn.execute(_RELKIND, {"schema": catalog.data_schema, "name": table}).scalar()
        return kind is None or kind == "p"

    def _quoted(self, preparer: Any, catalog: Catalog, table: str, version: int) -> str:
        schema, name = self.version_place(catalog, table, version)
        return f"{preparer.quote_schema(schema)}.{preparer.quote(name)}"

    def table_fingerprint(self, conn: Connection, schema: str, name: str) -> Hashable:
        rows = conn.execute(_PG_FINGERPRINT, {"schema": schema, "name": name}).all()
        return tuple(tuple(row) for row in rows) if rows else None

    def serialize_publish(self, conn: Connection, schema: str, table: str) -> None:
        # An advisory lock, released at commit or rollback, also covers a table not created yet.
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
            {"name": f"refdata:{schema}.{table}"},
        )

    def lock_for_publish(self, conn: Connection, table: sa.Table) -> None:
        # EXCLUSIVE blocks other writers but not plain SELECTs: readers see the old rows until commit.
        conn.exec_driver_sql(
            f"LOCK TABLE {conn.dialect.identifier_preparer.format_table(table)} IN EXCLUSIVE MODE"
        )

    def protect_text(self, value: Any, action: str) -> Any:
        if action == "hash":
            return keep_empty(value, sa.func.encode(sa.func.sha256(sa.func.convert_to(value, "UTF8")), "hex"))
        return keep_empty(value, mask_sql(value, sa.func.char_length(value), sa.func.repeat))

    def parse_date(self, value: Any, target: sa.types.TypeEngine[Any], date_format: str) -> Any:
        """Parse `value` with strptime-style `date_format` (PostgreSQL's to_date / to_timestamp)."""
        pattern = pg_date_pattern(date_format)
        if isinstance(target, sa.DateTime):
            return sa.cast(sa.func.to_timestamp(value, pattern), sa.DateTime())
        return sa.func.to_date(value, pattern)

    def render_text(self, value: Any, column_type: ColumnType) -> Any:
        """PostgreSQL: numbers and ISO layouts CAST to the file's text; other formats via to_char."""
        kind = column_type.kind
        if kind is ColumnKind.BOOLEAN:
            return render_boolean(value, column_type)
        if kind in (ColumnKind.DATE, ColumnKind.DATETIME) and column_type.date_format:
            return sa.func.to_char(value, pg_date_pattern(column_type.date_format))
        if kind is ColumnKind.DATETIME:
            return sa.func.to_char(value, "YYYY-MM-DD HH24:MI:SS")
        return sa.cast(value, sa.Text())

    def retype_column(
        self, conn: Connection, table: sa.Table, column: str, type_: sa.types.TypeEngine[Any], using: Any
    ) -> None:
        """PostgreSQL: one ``ALTER COLUMN ... TYPE ... USING``; `using` names the column unqualified."""
        preparer = conn.dialect.identifier_preparer
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.format_table(table)} ALTER COLUMN {preparer.quote(column)} "
            f"TYPE {type_.compile(dialect=conn.dialect)} USING {literal_sql(conn, using)}"
        )


class _ArrowCopy:
    """Writes a load's rows through one ``COPY ... (FORMAT csv)`` that stays open across batches.

    Values travel as Arrow arrays: converted to what COPY reads (``t``/``f``, ISO dates, NULL for
    empty cells) by Arrow kernels and written as CSV by Arrow's C++ writer, so no value becomes a
    Python object on this path. The server parses a batch on its own core while we read the next.
    """

    def __init__(self, conn: Connection, table: sa.Table, spec: WriteSpec) -> None:
        preparer = conn.dialect.identifier_preparer
        self._spec = spec
        self._names = [*spec.columns, "_row_number", *(k for k, _ in spec.metadata_values)]
        cols = ", ".join(preparer.quote(n) for n in self._names)
        self._statement = f"COPY {preparer.format_table(table)} ({cols}) FROM STDIN (FORMAT csv)"
        self._cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self._open: Any = None
        self._copy: Any = None
        self._options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
        self._constants = [
            (pa.scalar(v, pa.timestamp("us")) if isinstance(v, datetime) else pa.scalar(v))
            for _, v in spec.metadata_values
        ]

    def rows(self, first: int, rows: Rows) -> None:
        if rows:
            self.arrow(first, [pa.array(column, pa.string()) for column in zip(*rows, strict=True)])

    def arrow(self, first: int, columns: Sequence[pa.Array]) -> None:
        count = len(columns[0]) if columns else 0
        if not count:
            return
        spec = self._spec
        arrays = [
            copy_values(column, spec.types.get(name), spec.empty_as_null)
            for name, column in zip(spec.columns, columns, strict=True)
        ]
        arrays.append(pa.array(range(first, first + count), pa.int64()))
        arrays.extend(pa.repeat(value, count) for value in self._constants)
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(pa.record_batch(arrays, names=self._names), sink, self._options)
        if self._open is None:
            self._open = self._cursor.copy(self._statement)
            self._copy = self._open.__enter__()
        self._copy.write(memoryview(sink.getvalue()))
        faults.hit("write.batch")

    def close(self, exc: BaseException | None) -> None:
        """End the open COPY: commit its rows, or abort it (CopyFail) when `exc` is given."""
        opened, self._open, self._copy = self._open, None, None
        if opened is not None:
            opened.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        self._cursor.close()


def copy_values(column: pa.Array, column_type: ColumnType | None, empty_as_null: bool) -> pa.Array:
    """A column of checked file values as COPY must read them into a column of `column_type`.

    Empty cells are NULL in typed columns (and in text ones with EMPTY_AS_NULL); a boolean's
    spelling becomes ``t``/``f``; a date in another format than ISO is parsed by Arrow and
    written as ISO. Integers, decimals and ISO dates pass as written: COPY reads them exactly.
    """
    kind = column_type.kind if column_type is not None else ColumnKind.TEXT
    if kind is not ColumnKind.TEXT or empty_as_null:
        column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
    if column_type is None or kind is ColumnKind.TEXT:
        return column
    if kind is ColumnKind.BOOLEAN:
        true = column_type.true_text or "true"
        false = column_type.false_text or "false"
        null = pa.scalar(None, pa.string())
        return pc.if_else(pc.equal(column, true), "t", pc.if_else(pc.equal(column, false), "f", null))
    fmt = column_type.date_format
    if kind in (ColumnKind.DATE, ColumnKind.DATETIME) and fmt and not iso_castable(fmt):
        parsed = pc.strptime(column, format=fmt, unit="us")
        if kind is ColumnKind.DATE:
            parsed = pc.cast(parsed, pa.date32())
        return pc.cast(parsed, pa.string())
    return column


def pg_date_pattern(date_format: str) -> str:
    out, i = [], 0
    while i < len(date_format):
        part = date_format[i : i + 2]
        if part in _PG_PARTS:
            out.append(_PG_PARTS[part])
            i += 2
        else:
            char = date_format[i]
            out.append(f'"{char}"' if char.isalpha() else char)
            i += 1
    return "".join(out)
