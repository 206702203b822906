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

    def exec_driver_sql(self, statement: str) -> None:
        self.sql.append(statement)


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
