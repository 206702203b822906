"""Table names from file names in any script, column names clear of what the database reserves."""

from __future__ import annotations

import re

import pytest

from backend.db.mssql import MSSQLAdapter
from backend.db.postgresql import POSTGRESQL_SYSTEM_COLUMNS, PostgreSQLAdapter
from backend.db.sqlite import SQLiteAdapter
from backend.naming import normalize_columns, table_name_from_file


class TestTableNames:
    def test_names_in_other_scripts_give_distinct_tables(self):
        """国家.csv, 货币.csv and Страны.csv load into three different tables, none called "table"."""
        names = {table_name_from_file(n, 63) for n in ("国家.csv", "货币.csv", "Страны.csv")}
        assert len(names) == 3 and "table" not in names
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)

    def test_transliteration_is_readable_and_tagged(self):
        """A non-Latin name is spelled out in ASCII and tagged with a short hash of the name."""
        assert re.fullmatch(r"guojia_[0-9a-f]{8}", table_name_from_file("国家.csv"))
        assert re.fullmatch(r"strany_[0-9a-f]{8}", table_name_from_file("Страны.csv"))

    def test_homophones_do_not_share_a_table(self):
        """Simplified and traditional 国家/國家 transliterate alike but stay two tables."""
        assert table_name_from_file("国家.csv") != table_name_from_file("國家.csv")

    def test_the_name_is_stable_across_date_stamps_and_case(self):
        """Every dated file of one non-Latin name goes to the same table (case-folded)."""
        names = {
            table_name_from_file(n) for n in ("Страны_2024-01-01.csv", "страны_20240102.csv", "Страны.csv")
        }
        assert len(names) == 1

    def test_latin_names_keep_their_earlier_table(self):
        """Names whose letters decompose to ASCII keep the table they had (no hash added)."""
        assert table_name_from_file("Countries_2024-01-31.csv") == "countries"
        assert table_name_from_file("Données.csv") == "donnees"
        assert table_name_from_file("2024-01-01.csv") == "t_2024_01_01"

    def test_latin_letters_without_a_decomposition_are_transliterated(self):
        """ß and Ł are spelled out (strasse, lodz) instead of being dropped."""
        assert table_name_from_file("Straße.csv") == "strasse"
        assert table_name_from_file("Łódź.csv") == "lodz"

    def test_a_name_that_transliterates_to_nothing_gets_a_hash(self):
        """Names without letters get t_<hash>, different per name, never one shared "table"."""
        first, second = table_name_from_file("★★.csv"), table_name_from_file("---.csv")
        assert re.fullmatch(r"t_[0-9a-f]{8}", first) and re.fullmatch(r"t_[0-9a-f]{8}", second)
        assert first != second

    def test_a_long_non_latin_name_keeps_its_tag_within_the_limit(self):
        """A name cut to the identifier limit still ends with its distinguishing hash."""
        a, b = (
            table_name_from_file("国" * 100 + "家.csv", 63),
            table_name_from_file("国" * 100 + "国.csv", 63),
        )
        assert len(a) <= 63 and len(b) <= 63 and a != b


class TestReservedColumns:
    @pytest.mark.parametrize("name", sorted(POSTGRESQL_SYSTEM_COLUMNS))
    def test_postgresql_system_columns_are_renamed_like_a_clash(self, name: str):
        """A header named like a PostgreSQL system column gets the clash suffix (_2)."""
        reserved = PostgreSQLAdapter.reserved_column_names
        assert normalize_columns(["id", name.upper()], 63, reserved) == ("id", f"{name}_2")

    def test_other_databases_keep_those_names(self):
        """SQLite and SQL Server accept xmin and rowid as column names: nothing is renamed there."""
        for adapter in (SQLiteAdapter, MSSQLAdapter):
            assert normalize_columns(["xmin", "rowid", "oid"], 128, adapter.reserved_column_names) == (
                "xmin",
                "rowid",
                "oid",
            )

    def test_a_renamed_reserved_name_does_not_take_a_real_header(self):
        """xmin next to a real xmin_2 header: both keep distinct names."""
        columns = normalize_columns(["xmin", "xmin_2"], 63, POSTGRESQL_SYSTEM_COLUMNS)
        assert len(set(columns)) == 2 and "xmin" not in columns


class TestDetect:
    def test_detect_shows_the_table_a_file_would_load_into(self, tmp_path, capsys):
        """`detect` names the derived table, in text and in JSON, for a non-Latin file name."""
        import json

        from tests.support import run_cli

        path = tmp_path / "Страны.csv"
        path.write_text("код,название\nDE,Германия\n", encoding="utf-8")
        url = ["--database-url", f"sqlite:///{tmp_path / 'x.db'}"]
        code, out, _ = run_cli(["detect", str(path), *url], capsys)
        expected = table_name_from_file(path.name, 128)
        assert code == 0 and f"Table: ref.{expected}" in out
        code, out, _ = run_cli(["detect", str(path), "--json", *url], capsys)
        assert code == 0 and json.loads(out)["table"] == expected
