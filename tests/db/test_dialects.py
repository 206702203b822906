"""Dialect seams: SQL Server statements compile and stay within its limits; identifiers are quoted."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mssql import pyodbc as mssql_pyodbc

from backend.db.adapter import WriteSpec, text_width
from backend.db.dialects import adapter_for
from backend.db.mssql import MSSQLAdapter, mssql_input_sizes, swap_statements
from backend.db.postgresql import PostgreSQLAdapter, copy_values
from backend.db.sqlite import SQLiteAdapter
from backend.errors import ConfigError
from backend.load.loader import load_file
from backend.load.plan import metadata_columns
from backend.models import ColumnKind, ColumnType, LoadRequest, LoadType
from tests.support import make_settings, open_db, write_csv

# The pyodbc dialect (qmark parameters), as production uses; building it does not import pyodbc.
MSSQL = mssql_pyodbc.dialect(paramstyle="qmark", deprecate_large_types=True)


class TestAdapterChoice:
    @pytest.mark.parametrize(
        "url,expected",
        [
            ("sqlite:///x.db", SQLiteAdapter),
            ("postgresql://u@h/db", PostgreSQLAdapter),
            ("postgresql+psycopg://u@h/db", PostgreSQLAdapter),
            ("mssql+pyodbc://u:p@h/db?driver=ODBC+Driver+18+for+SQL+Server", MSSQLAdapter),
        ],
    )
    def test_url_selects_its_adapter(self, url, expected):
        """Each supported URL scheme maps to its dialect adapter."""
        assert isinstance(adapter_for(url), expected)

    def test_unsupported_database_is_a_config_error(self):
        """An unsupported backend is refused at start-up with a ConfigError naming it."""
        with pytest.raises(ConfigError, match="oracle"):
            adapter_for("oracle://u:p@h/db")


def spec(columns, types=None, **kw):
    values = {"load_id": 7, "loaded_at": datetime(2026, 1, 2, 3, 4, 5), "load_type": "fullload", "version": 2}
    values.update(kw)
    return WriteSpec(columns=tuple(columns), types=types or {}, empty_as_null=True, **values)


class TestSqlServerBatching:
    def test_input_sizes_follow_the_longest_value_in_the_batch(self):
        """Input sizes are the batch's longest value per column (the row number last), so pyodbc never
        allocates NVARCHAR(MAX) per cell.
        """
        rows = [["ab", "x", 1], ["abcdef", "", 2], ["a", "y" * 10, 3]]
        assert mssql_input_sizes(rows) == [(-9, 6, 0), (-9, 10, 0), (-5, 0, 0)]

    def test_values_over_4000_characters_bind_as_nvarchar_max(self):
        """A value longer than 4000 characters is bound as SQL_WLONGVARCHAR instead of being cut."""
        assert mssql_input_sizes([["a" * 4001, 1]]) == [(-10, 0, 0), (-5, 0, 0)]

    def test_version_insert_has_one_marker_per_value_and_takes_a_table_lock(self):
        """The INSERT into a new version carries one parameter per value plus the row number (far under
        2,100 for fast_executemany arrays), the metadata as literals, and WITH (TABLOCK)."""
        names = [f"c{i}" for i in range(500)]
        table = sa.Table(
            "t__v2",
            sa.MetaData(),
            *(sa.Column(c, sa.UnicodeText) for c in names),
            *metadata_columns(),
            schema="ref",
        )
        sql = MSSQLAdapter().insert_sql(SimpleNamespace(dialect=MSSQL), table, spec(names))  # type: ignore[arg-type]
        assert sql.count("?") == 501
        assert sql.startswith("INSERT INTO ref.t__v2 WITH (TABLOCK) (")
        assert "7, '2026-01-02 03:04:05', 'fullload', 2)" in sql

    def test_typed_values_are_converted_in_the_insert(self):
        """Checked text becomes a typed value in SQL: NULL for an empty cell, a simple CASE for a boolean
        (one parameter each), a CONVERT style for a day-first date."""
        table = sa.Table(
            "t__v2",
            sa.MetaData(),
            sa.Column("n", sa.Integer),
            sa.Column("b", sa.Boolean),
            sa.Column("d", sa.Date),
            *metadata_columns(),
            schema="ref",
        )
        types = {
            "n": ColumnType(ColumnKind.INTEGER),
            "b": ColumnType(ColumnKind.BOOLEAN, true_text="Yes", false_text="No"),
            "d": ColumnType(ColumnKind.DATE, date_format="%d/%m/%Y"),
        }
        sql = MSSQLAdapter().insert_sql(SimpleNamespace(dialect=MSSQL), table, spec(["n", "b", "d"], types))  # type: ignore[arg-type]
        assert "CAST(nullif(?, '') AS INTEGER)" in sql
        assert "CASE nullif(?, '') WHEN 'Yes' THEN 1 WHEN 'No' THEN 0 ELSE NULL END" in sql
        assert "convert(DATE, nullif(?, ''), 103)" in sql
        assert sql.count("?") == 4

    def test_swap_switches_the_current_version_out_and_the_new_one_in(self):
        """A fullload on SQL Server: an empty copy in bkp takes the current rows by SWITCH (waiting at low
        priority), then the new version switches into the emptied ref table."""
        catalog = SimpleNamespace(data_schema="ref", backup_schema="bkp")
        new = sa.Table("rates__v3", sa.MetaData(), schema="ref")
        same = swap_statements(MSSQL, catalog, "rates", new, 3, 2, True)
        assert same == [
            "SELECT TOP 0 * INTO bkp.rates__v2 FROM ref.rates",
            "ALTER TABLE ref.rates SWITCH TO bkp.rates__v2 WITH (WAIT_AT_LOW_PRIORITY "
            "(MAX_DURATION = 1 MINUTES, ABORT_AFTER_WAIT = SELF))",
            "ALTER TABLE ref.rates__v3 SWITCH TO ref.rates",
            "DROP TABLE ref.rates__v3",
        ]
        changed = swap_statements(MSSQL, catalog, "rates", new, 3, 2, False)
        assert changed[-2:] == ["DROP TABLE ref.rates", "EXEC sp_rename N'ref.rates__v3', N'rates'"]

    def test_text_widths_round_up_and_become_max_past_4000(self):
        """Text columns are sized to the data in steps and become NVARCHAR(MAX) past 4000 characters."""
        adapter = MSSQLAdapter()
        assert text_width(3) == 16 and text_width(17) == 32 and text_width(4000) == 4000
        assert adapter.text_type(4001).compile(dialect=MSSQL) == "NVARCHAR(max)"
        assert adapter.text_type(100).compile(dialect=MSSQL) == "NVARCHAR(128)"


class TestEveryLoaderStatementCompilesForSqlServer:
    def test_statements_of_a_real_load_compile_for_mssql_within_limits(self, tmp_path: Path):
        """Every SQLAlchemy statement a fullload+append issues compiles for SQL Server, quotes hostile names,
        <2,100 params.
        """
        settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/r.db")
        db = open_db(settings)
        seen: list[sa.ClauseElement] = []

        @sa.event.listens_for(db.engine, "before_execute")
        def capture(conn, clauseelement, multiparams, params, execution_options):
            if isinstance(clauseelement, sa.ClauseElement):
                seen.append(clauseelement)

        path = write_csv(tmp_path / "x]; DROP TABLE y;--.csv", [["a]; DROP TABLE x;--", "b"], ["1", "2"]])
        load_file(db, settings, LoadRequest(path=path))
        load_file(db, settings, LoadRequest(path=path))
        load_file(db, settings, LoadRequest(path=path, load_type=LoadType.APPEND))
        db.dispose()
        assert len(seen) > 20
        kinds = set()
        for statement in seen:
            compiled = statement.compile(dialect=MSSQL)
            sql = str(compiled)
            kinds.add(sql.split()[0])
            assert len(compiled.params or {}) <= 2100
            # The hostile text appears only inside a bracket-quoted (and ]-escaped) identifier.
            assert "DROP TABLE x" not in sql.replace("[a]]; DROP TABLE x;--]", "")
            assert "DROP TABLE y" not in sql
        assert {"INSERT", "UPDATE", "SELECT"} <= kinds

    def test_hostile_identifier_is_bracket_quoted_with_escaping(self):
        """A column named with a closing bracket is quoted as [a]]...] so it cannot end the identifier."""
        table = sa.Table("t", sa.MetaData(), sa.Column("a]; DROP TABLE x;--", sa.Unicode(10)), schema="ref")
        assert "[a]]; DROP TABLE x;--]" in str(sa.select(table).compile(dialect=MSSQL))


class _RecordingConnection:
    """Stands in for a connection only to capture the SQL text an adapter emits (no server here)."""

    def __init__(self, dialect: sa.engine.Dialect) -> None:
        self.dialect = dialect
        self.sql: list[str] = []
        self.params: list[dict[str, object]] = []

    def exec_driver_sql(self, statement: str) -> None:
        self.sql.append(statement)

    def execute(self, statement: sa.ClauseElement, params: dict[str, object] | None = None) -> None:
        self.sql.append(str(statement.compile(dialect=self.dialect)))
        self.params.append(params or {})


class TestRawSqlServerStatements:
    def test_widening_a_column_uses_t_sql_syntax_and_quoting(self):
        """SQL Server's ALTER COLUMN repeats nullability and bracket-quotes a hostile column name."""
        conn = _RecordingConnection(MSSQL)
        table = sa.Table("t", sa.MetaData(), sa.Column("a]x", sa.Unicode(10)), schema="ref")
        adapter = MSSQLAdapter()
        adapter.widen_column(conn, table, "a]x", adapter.text_type(100))  # type: ignore[arg-type]
        assert conn.sql == ["ALTER TABLE ref.t ALTER COLUMN [a]]x] NVARCHAR(128) NULL"]

    def test_publish_lock_takes_a_table_lock_that_lets_readers_in(self):
        """The SQL Server publish lock is UPDLOCK+TABLOCK+HOLDLOCK (writers wait, readers do not)."""
        conn = _RecordingConnection(MSSQL)
        table = sa.Table("rates", sa.MetaData(), sa.Column("c", sa.Unicode(10)), schema="ref")
        MSSQLAdapter().lock_for_publish(conn, table)  # type: ignore[arg-type]
        assert conn.sql == ["SELECT COUNT(*) FROM ref.rates WITH (UPDLOCK, TABLOCK, HOLDLOCK)"]


class TestCopyValues:
    def test_checked_values_become_what_copy_reads(self):
        """For COPY, a boolean's spelling becomes t/f, a day-first date ISO, and an empty cell NULL."""
        booleans = copy_values(
            pa.array(["Yes", "No", ""]),
            ColumnType(ColumnKind.BOOLEAN, true_text="Yes", false_text="No"),
            True,
        )
        assert booleans.to_pylist() == ["t", "f", None]
        dates = copy_values(
            pa.array(["31/01/2024", ""]), ColumnType(ColumnKind.DATE, date_format="%d/%m/%Y"), True
        )
        assert dates.to_pylist() == ["2024-01-31", None]

    def test_text_keeps_empty_cells_unless_empty_as_null(self):
        """A text column's empty cell is NULL only with EMPTY_AS_NULL; other values pass unchanged."""
        text = pa.array(["a\tb", "", "x,y"])
        assert copy_values(text, None, False).to_pylist() == ["a\tb", "", "x,y"]
        assert copy_values(text, None, True).to_pylist() == ["a\tb", None, "x,y"]


def _mssql_2019() -> sa.engine.Dialect:
    """The pyodbc dialect as it is once connected to SQL Server 2019: unconnected, SQLAlchemy assumes
    a server older than 2008 and compiles a DATE column as DATETIME."""
    dialect = mssql_pyodbc.dialect(paramstyle="qmark", deprecate_large_types=True)
    dialect.server_version_info = (15, 0)
    return dialect


CATALOG = SimpleNamespace(data_schema="ref", backup_schema="bkp")


class TestSqlServerVersionStatements:
    def test_setting_a_version_aside_transfers_its_table_to_bkp_under_the_same_name(self):
        """A fullload older than the current one is kept by one ALTER SCHEMA ... TRANSFER (metadata
        only), to the place `kept_place` names."""
        conn = _RecordingConnection(MSSQL)
        new = sa.Table("rates__v3", sa.MetaData(), schema="ref")
        adapter = MSSQLAdapter()
        adapter.set_aside(conn, CATALOG, table="rates", new=new, version=3)  # type: ignore[arg-type]
        assert conn.sql == ["ALTER SCHEMA bkp TRANSFER ref.rates__v3"]
        assert adapter.kept_place(CATALOG, "rates", 3) == ("bkp", "rates__v3")  # type: ignore[arg-type]

    def test_set_aside_quotes_a_reserved_schema_name(self):
        """A backup schema named like a T-SQL keyword is bracket-quoted in the TRANSFER."""
        conn = _RecordingConnection(MSSQL)
        catalog = SimpleNamespace(data_schema="ref", backup_schema="user")
        new = sa.Table("rates__v3", sa.MetaData(), schema="ref")
        MSSQLAdapter().set_aside(conn, catalog, table="rates", new=new, version=3)  # type: ignore[arg-type]
        assert conn.sql == ["ALTER SCHEMA [user] TRANSFER ref.rates__v3"]

    def test_a_first_version_is_renamed_into_place(self):
        """With no current version there is nothing to switch out: the new table takes the live name."""
        new = sa.Table("rates__v1", sa.MetaData(), schema="ref")
        assert swap_statements(MSSQL, CATALOG, "rates", new, 1, None, False) == [
            "EXEC sp_rename N'ref.rates__v1', N'rates'"
        ]

    def test_the_swap_keeps_the_replaced_version_where_kept_place_says(self):
        """The SWITCH target of the replaced rows is the name the catalogue records for it, also when a
        long table name is shortened to 128 characters."""
        table = "t" * 126
        new = sa.Table(f"{table}__v3", sa.MetaData(), schema="ref")
        statements = swap_statements(MSSQL, CATALOG, table, new, 3, 2, True)
        schema, name = MSSQLAdapter().kept_place(CATALOG, table, 2)  # type: ignore[arg-type]
        assert len(name) <= 128
        assert statements[0] == f"SELECT TOP 0 * INTO {schema}.{name} FROM ref.{table}"
        assert statements[1].startswith(f"ALTER TABLE ref.{table} SWITCH TO {schema}.{name} WITH (")

    def test_a_changed_definition_drops_the_emptied_live_table_before_renaming(self):
        """With other columns the new table cannot SWITCH in: the emptied ref table is dropped and the new
        one renamed, after the current rows switched out to bkp."""
        new = sa.Table("rates__v3", sa.MetaData(), schema="ref")
        assert swap_statements(MSSQL, CATALOG, "rates", new, 3, 2, False) == [
            "SELECT TOP 0 * INTO bkp.rates__v2 FROM ref.rates",
            "ALTER TABLE ref.rates SWITCH TO bkp.rates__v2 WITH (WAIT_AT_LOW_PRIORITY "
            "(MAX_DURATION = 1 MINUTES, ABORT_AFTER_WAIT = SELF))",
            "DROP TABLE ref.rates",
            "EXEC sp_rename N'ref.rates__v3', N'rates'",
        ]

    def test_an_earlier_release_table_gets_its_version_column_as_metadata(self):
        """Adopting a table of an earlier release adds ``_version`` with a constant default."""
        conn = _RecordingConnection(MSSQL)
        table = sa.Table("rates", sa.MetaData(), sa.Column("c", sa.Unicode(10)), schema="ref")
        MSSQLAdapter().add_version_column(conn, table, 4)  # type: ignore[arg-type]
        assert conn.sql == ["ALTER TABLE ref.rates ADD _version INTEGER NOT NULL DEFAULT 4"]


class TestSqlServerLoadStatements:
    def test_retyping_a_column_keeps_its_place_through_a_scratch_column(self):
        """A column changing type: values converted into a scratch column, the column altered in
        place, the values moved back, the scratch dropped (five statements, names quoted)."""
        conn = _RecordingConnection(_mssql_2019())
        table = sa.Table("rates", sa.MetaData(), sa.Column("d]x", sa.Unicode(10)), schema="ref")
        adapter = MSSQLAdapter()
        using = adapter.parse_date(table.c["d]x"], sa.Date(), "%d/%m/%Y")
        adapter.retype_column(conn, table, "d]x", sa.Date(), using)  # type: ignore[arg-type]
        assert conn.sql == [
            "ALTER TABLE ref.rates ADD [d]]x__retype] DATE NULL",
            "UPDATE ref.rates SET [d]]x__retype] = convert(DATE, ref.rates.[d]]x], 103)",
            "ALTER TABLE ref.rates ALTER COLUMN [d]]x] DATE NULL",
            "UPDATE ref.rates SET [d]]x] = [d]]x__retype]",
            "ALTER TABLE ref.rates DROP COLUMN [d]]x__retype]",
        ]

    def test_publishers_of_one_table_serialise_on_a_transaction_owned_application_lock(self):
        """The publish lock is sp_getapplock owned by the transaction, named after the table, and a
        refusal (negative return code) raises instead of publishing unlocked."""
        conn = _RecordingConnection(MSSQL)
        MSSQLAdapter().serialize_publish(conn, "ref", "rates")  # type: ignore[arg-type]
        (sql,) = conn.sql
        assert "EXEC @rc = sp_getapplock @Resource = ?, @LockMode = 'Exclusive'" in sql
        assert "@LockOwner = 'Transaction'" in sql and "IF @rc < 0 THROW 51000" in sql
        assert conn.params == [{"name": "refdata:ref.rates"}]

    def test_a_temporary_view_is_a_derived_table_and_creates_nothing(self):
        """SQL Server has no temporary views: the rules read the query as a derived table instead."""
        conn = _RecordingConnection(MSSQL)
        table = sa.Table("rates__v2", sa.MetaData(), sa.Column("code", sa.Unicode(10)), schema="ref")
        adapter = MSSQLAdapter()
        view = adapter.temporary_view(
            conn, "refdata_stage", sa.select(table.c.code).where(table.c.code != "")
        )  # type: ignore[arg-type]
        adapter.drop_temporary_views(conn, ["refdata_stage"])  # type: ignore[arg-type]
        assert (
            view == "(SELECT ref.rates__v2.code \nFROM ref.rates__v2 \nWHERE ref.rates__v2.code != N'') "
            "AS refdata_stage"
        )
        assert conn.sql == []

    def test_hashing_and_masking_compile_to_t_sql(self):
        """Hashing takes the UTF-8 bytes (a UTF-8 collation, SQL Server 2019+) through HASHBYTES; masking
        uses LEN and REPLICATE; NULL and '' stay as they are in both."""
        value = sa.column("v", sa.Unicode(10))
        adapter = MSSQLAdapter()

        def sql(expression: object) -> str:
            return str(expression.compile(dialect=MSSQL, compile_kwargs={"literal_binds": True}))  # type: ignore[attr-defined]

        assert sql(adapter.protect_text(value, "hash")) == (
            "CASE WHEN (v IS NULL OR v = N'') THEN v ELSE lower(convert(VARCHAR(64), hashbytes('SHA2_256', "
            "CAST(v COLLATE Latin1_General_100_CI_AS_SC_UTF8 AS VARCHAR(max))), 2)) END"
        )
        assert sql(adapter.protect_text(value, "mask")) == (
            "CASE WHEN (v IS NULL OR v = N'') THEN v ELSE CASE WHEN (LEN(v) > 4) THEN "
            "concat(replicate('*', LEN(v) - 4), right(v, 4)) ELSE replicate('*', LEN(v)) END END"
        )

    def test_dates_are_written_back_in_the_files_format_with_format(self):
        """Export and the rules see a date in the file's own layout: FORMAT with a .NET pattern whose
        separators are escaped; a datetime without a format is ISO."""
        value = sa.column("v")
        adapter = MSSQLAdapter()

        def sql(column_type: ColumnType) -> str:
            return str(
                adapter.render_text(value, column_type).compile(
                    dialect=MSSQL, compile_kwargs={"literal_binds": True}
                )
            )

        assert (
            sql(ColumnType(ColumnKind.DATE, date_format="%d/%m/%Y")) == r"format(v, 'dd\/MM\/yyyy', 'en-US')"
        )
        assert sql(ColumnType(ColumnKind.DATETIME)) == r"format(v, 'yyyy\-MM\-dd HH\:mm\:ss', 'en-US')"
        assert sql(ColumnType(ColumnKind.DECIMAL, precision=10, scale=2)) == "CAST(v AS NVARCHAR(max))"

    def test_a_date_format_without_a_convert_style_is_refused(self):
        """A format SQL Server's CONVERT has no style for is a ConfigError (load the column as text), and a
        datetime keeps its date part's style."""
        adapter = MSSQLAdapter()
        with pytest.raises(ConfigError, match="CONVERT style"):
            adapter.parse_date(sa.column("v"), sa.Date(), "%Y%m%d")
        converted = adapter.parse_date(sa.column("v"), sa.DateTime(), "%d.%m.%Y %H:%M")
        assert str(converted.compile(dialect=MSSQL)) == "convert(DATETIME2, v, 104)"
