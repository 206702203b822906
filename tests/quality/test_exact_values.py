"""A value that does not fit its typed column exactly refuses the file; typed values come back as written.

Each case here was a silent change before: a later load into a typed table rounded, truncated or
defaulted values (`abc` -> 0, `2.5` -> 2, `maybe` -> false, `1.25` -> 1.3), SQLite kept big numbers
as REALs, and export wrote a lone CR unquoted. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from backend.errors import RowError
from backend.models import LoadType, TypePolicy
from backend.ops.export import export_table

INFER = {"type_policy": TypePolicy.INFER}


def export(env, table: str, version: int | None = None) -> list[list[str]]:
    out = io.StringIO()
    export_table(env.db, table, out, version=version)
    return list(csv.reader(io.StringIO(out.getvalue(), newline="")))


class TestIntegerColumns:
    @pytest.mark.parametrize("bad", ["abc", "2.5", "3.75", "n/a", "007", " 3", "+3", "-0", "2147483648"])
    @pytest.mark.parametrize("load_type", [LoadType.FULLLOAD, LoadType.APPEND])
    def test_a_value_that_is_not_an_integer_refuses_the_file(self, env, bad, load_type):
        """A non-integer or out-of-range value for an INTEGER column refuses the file, table unchanged."""
        env.load(env.csv("q.csv", [["code", "qty"], ["A", "1"], ["B", "2"]]), **INFER)
        before = export(env, "q")
        with pytest.raises(RowError) as info:
            env.load(env.csv("q.csv", [["code", "qty"], ["A", "5"], ["B", bad]]), load_type=load_type)
        message = str(info.value)
        assert "q.csv" in message and "line 3" in message and "'qty'" in message and repr(bad) in message
        assert export(env, "q") == before

    def test_text_policy_still_checks_typed_columns(self, env):
        """TYPE_POLICY=text does not switch the check off once the table has typed columns."""
        env.load(env.csv("q.csv", [["code", "qty"], ["A", "1"]]), **INFER)
        with pytest.raises(RowError, match="'abc'"):
            env.load(env.csv("q.csv", [["code", "qty"], ["A", "abc"]]), type_policy=TypePolicy.TEXT)

    def test_every_misfit_line_is_counted(self, env):
        """The message names the first misfits by line and says how many more there are."""
        env.load(env.csv("q.csv", [["code", "qty"], ["A", "1"]]), **INFER)
        rows = [["code", "qty"]] + [[f"c{i}", "x" if i % 2 else str(i)] for i in range(20)]
        with pytest.raises(RowError) as info:
            env.load(env.csv("q.csv", rows))
        assert "line 3 'x'" in str(info.value) and "and 5 more" in str(info.value)


class TestOtherKinds:
    def test_a_boolean_column_refuses_other_words(self, env):
        """`maybe` is neither spelling of a boolean column: refused, never stored as false."""
        env.load(env.csv("f.csv", [["k", "on"], ["a", "true"], ["b", "false"]]), **INFER)
        with pytest.raises(RowError, match="'maybe'"):
            env.load(env.csv("f.csv", [["k", "on"], ["a", "maybe"]]))
        assert export(env, "f") == [["k", "on"], ["a", "true"], ["b", "false"]]

    def test_a_boolean_column_keeps_its_spelling(self, env):
        """A Yes/No column is exported as Yes/No, and a later file must spell it the same way."""
        env.load(env.csv("f.csv", [["k", "on"], ["a", "Yes"], ["b", "No"]]), **INFER)
        env.load(env.csv("f.csv", [["k", "on"], ["c", "No"], ["d", "Yes"]]), load_type=LoadType.APPEND)
        assert export(env, "f") == [["k", "on"], ["a", "Yes"], ["b", "No"], ["c", "No"], ["d", "Yes"]]
        with pytest.raises(RowError, match="'true'"):
            env.load(env.csv("f.csv", [["k", "on"], ["e", "true"]]), load_type=LoadType.APPEND)

    def test_a_date_column_refuses_non_dates_and_writes_dates_back_as_they_were(self, env):
        """`soon` is refused; day-first dates come back day-first, not as ISO."""
        env.load(env.csv("d.csv", [["k", "day"], ["a", "31/01/2024"], ["b", "15/02/2024"]]), **INFER)
        assert export(env, "d") == [["k", "day"], ["a", "31/01/2024"], ["b", "15/02/2024"]]
        with pytest.raises(RowError, match="'soon'"):
            env.load(env.csv("d.csv", [["k", "day"], ["a", "soon"]]))
        with pytest.raises(RowError, match="'2024-01-31'"):
            env.load(env.csv("d.csv", [["k", "day"], ["a", "2024-01-31"]]))
        assert export(env, "d") == [["k", "day"], ["a", "31/01/2024"], ["b", "15/02/2024"]]

    def test_a_decimal_column_refuses_more_places_than_it_has(self, env):
        """1.25 into a decimal with one place is refused, never rounded to 1.3."""
        env.load(env.csv("p.csv", [["k", "v"], ["a", "1.5"], ["b", "2.5"]]), **INFER)
        with pytest.raises(RowError, match=re.escape("'1.25'")):
            env.load(env.csv("p.csv", [["k", "v"], ["a", "1.25"], ["b", "2.75"]]))
        assert export(env, "p") == [["k", "v"], ["a", "1.5"], ["b", "2.5"]]

    def test_a_decimal_column_refuses_fewer_places_too(self, env):
        """1.5 into a decimal with two places would come back as 1.50: refused."""
        env.load(env.csv("p.csv", [["k", "v"], ["a", "1.50"], ["b", "2.25"]]), **INFER)
        assert export(env, "p") == [["k", "v"], ["a", "1.50"], ["b", "2.25"]]
        with pytest.raises(RowError, match=re.escape("'1.5'")):
            env.load(env.csv("p.csv", [["k", "v"], ["a", "1.5"]]))


class TestExactStorage:
    def test_big_numbers_come_back_digit_for_digit(self, env):
        """38-digit integers and decimals past 15 significant digits are stored exactly, never as a REAL."""
        rows = [
            ["k", "big", "long", "huge"],
            ["a", "12345678901234567890123456789012345678", "12345678901234567.891", "99999999999999999999"],
            ["b", "-1", "0.001", "1"],
        ]
        env.load(env.csv("n.csv", rows), **INFER)
        assert export(env, "n") == rows

    def test_an_empty_cell_of_a_typed_column_is_null_even_without_empty_as_null(self, env):
        """With EMPTY_AS_NULL=false an empty cell of a typed column is NULL (exported empty), never 0."""
        env.settings = env.settings.model_copy(update={"empty_as_null": False})
        env.db.settings = env.settings
        rows = [["k", "n", "t"], ["a", "", ""], ["b", "5", "x"]]
        env.load(env.csv("e.csv", rows), **INFER)
        assert export(env, "e") == rows
        assert env.rows("SELECT n FROM ref.e WHERE k = 'a'") == [(None,)]

    def test_backup_versions_keep_their_values_when_the_column_changes_kind(self, env):
        """replace + infer: integers, then 007/abc/1.50, then anything; version 2 exports 007, abc, 1.50."""
        env.policy("r", "schema_evolution: replace\n")
        env.load(env.csv("r.csv", [["v"], ["1"], ["2"]]), **INFER)
        env.load(env.csv("r.csv", [["v"], ["007"], ["abc"], ["1.50"]]), **INFER)
        env.load(env.csv("r.csv", [["v"], ["9"]]), **INFER)
        assert export(env, "r", version=1) == [["v"], ["1"], ["2"]]
        assert export(env, "r", version=2) == [["v"], ["007"], ["abc"], ["1.50"]]
        assert export(env, "r") == [["v"], ["9"]]


class TestWidenToText:
    def test_the_policy_turns_the_column_into_text_and_keeps_every_value(self, env):
        """widen_to_text turns typed columns into text in ref and bkp, the old values as written."""
        env.policy("w", "type_mismatch: widen_to_text\n")
        env.load(
            env.csv(
                "w.csv",
                [["k", "n", "d", "b"], ["a", "1", "31/01/2024", "Yes"], ["b", "2", "01/02/2024", "No"]],
            ),
            **INFER,
        )
        env.load(env.csv("w.csv", [["k", "n", "d", "b"], ["c", "3", "15/03/2024", "No"]]))  # v1 -> bkp
        env.load(env.csv("w.csv", [["k", "n", "d", "b"], ["e", "007", "soon", "maybe"]]))
        assert export(env, "w") == [["k", "n", "d", "b"], ["e", "007", "soon", "maybe"]]
        assert export(env, "w", version=1) == [
            ["k", "n", "d", "b"],
            ["a", "1", "31/01/2024", "Yes"],
            ["b", "2", "01/02/2024", "No"],
        ]
        assert export(env, "w", version=2) == [["k", "n", "d", "b"], ["c", "3", "15/03/2024", "No"]]

    def test_an_append_widens_and_keeps_the_rows_already_there(self, env):
        """An append whose values do not fit widens the column; the earlier rows read back unchanged."""
        env.policy("w", "type_mismatch: widen_to_text\n")
        env.load(env.csv("w.csv", [["k", "p"], ["a", "1.50"]]), **INFER)
        env.load(env.csv("w.csv", [["k", "p"], ["b", "2.5"]]), load_type=LoadType.APPEND)
        assert export(env, "w") == [["k", "p"], ["a", "1.50"], ["b", "2.5"]]


class TestExportQuoting:
    def test_a_lone_carriage_return_is_quoted(self, env):
        """A value holding a lone CR is quoted, so the exported CSV reads back as the same rows."""
        path = env.tmp / "cr.csv"
        path.write_bytes(b'k,v\na,"x\ry"\nb,z\n')
        env.load(path)
        out = io.StringIO()
        export_table(env.db, "cr", out)
        assert list(csv.reader(io.StringIO(out.getvalue(), newline=""))) == [
            ["k", "v"],
            ["a", "x\ry"],
            ["b", "z"],
        ]
