"""Dialect seams: SQL Server statements compile and stay within its limits; identifiers are quoted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mssql import pyodbc as mssql_pyodbc

from backend.db.adapter import text_width
from backend.db.dialects import adapter_for
from backend.db.mssql import MSSQLAdapter, mssql_input_sizes
from backend.db.postgresql import PostgreSQLAdapter, copy_text
from backend.db.sqlite import SQLiteAdapter
from backend.errors import ConfigError
from backend.load.loader import load_file
from backend.models import LoadRequest, LoadType
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


class TestSqlServerBatching:
    def test_input_sizes_follow_the_longest_value_in_the_batch(self):
        """Input sizes are the batch's longest value per column, so pyodbc never allocates NVARCHAR(MAX) per
        cell.
        """
        rows = [[1, "ab", "x"], [2, "abcdef", ""], [3, "a", "y" * 10]]
        assert mssql_input_sizes(rows, 3) == [(-5, 0, 0), (-9, 6, 0), (-9, 10, 0)]

    def test_values_over_4000_characters_bind_as_nvarchar_max(self):
        """A value longer than 4000 characters is bound as SQL_WLONGVARCHAR instead of being cut."""
        rows = [[1, "a" * 4001]]
        assert mssql_input_sizes(rows, 2) == [(-5, 0, 0), (-10, 0, 0)]

    def test_staging_insert_has_one_marker_per_column(self):
        """The staging INSERT carries one parameter per column (fast_executemany arrays), far under 2,100."""
        adapter = MSSQLAdapter()
        stage = adapter.stage_table(sa.MetaData(), "refdata_stage_1", [f"c{i}" for i in range(500)])
        compiled = sa.insert(stage).compile(dialect=MSSQL)
        assert str(compiled).count("?") == 501
        assert stage.name.startswith("#")

    def test_staging_insert_takes_a_table_lock(self):
        """The #temp staging INSERT carries WITH (TABLOCK), one marker per column."""
        adapter = MSSQLAdapter()
        stage = adapter.stage_table(sa.MetaData(), "refdata_stage_1", ["a", "b"])
        sql = adapter.stage_insert_sql(SimpleNamespace(dialect=MSSQL), stage)  # type: ignore[arg-type]
        assert "[#refdata_stage_1] WITH (TABLOCK) (_row_number, a, b)" in sql and sql.count("?") == 3

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
        assert {"INSERT", "UPDATE", "SELECT", "DELETE"} <= kinds

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


class TestCopyText:
    def test_plain_rows_become_tab_separated_lines(self):
        """Rows without special characters are sent as one tab-separated text, empty cells as empty fields."""
        assert copy_text([["1", "a b", ""], ["2", "é", "x"]]) == "1\ta b\t\n2\té\tx\n"

    @pytest.mark.parametrize("value", ["a\tb", "a\nb", "a\rb", "back\\slash", "\\N"])
    def test_a_value_that_needs_escaping_sends_the_batch_row_by_row(self, value):
        """A tab, line break, CR or backslash anywhere in the batch means no shortcut (None)."""
        assert copy_text([["1", "plain"], ["2", value]]) is None


class TestValueLength:
    def test_sql_server_counts_utf16_units_including_trailing_spaces(self):
        """LEN would drop trailing spaces: the stage's lengths use DATALENGTH / 2 on SQL Server."""
        sql = str(MSSQLAdapter().value_length(sa.column("v")).compile(dialect=MSSQL))
        assert sql.replace(" ", "") == "datalength(v)/?" and "CAST" not in sql
