"""Ragged-row policies and typed (infer) loads through the real pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from backend.errors import RowError
from backend.load.loader import load_file
from backend.models import LoadRequest, RaggedPolicy, TypePolicy
from tests.support import export_rows, make_settings, open_db

RAGGED = "id,name,note\n1,a,x\n2,b\n3,c,y,extra,more\n4,d,z\n"


class TestRaggedRows:
    def test_error_policy_names_the_first_offending_lines(self, env, tmp_path):
        """By default a short and a long row fail the load, naming lines 3 and 4."""
        settings, db = env
        path = tmp_path / "ragged.csv"
        path.write_text(RAGGED)
        with pytest.raises(RowError) as info:
            load_file(db, settings, LoadRequest(path=path))
        assert info.value.rows == (3, 4)

    def test_repair_pads_short_rows_and_keeps_surplus_fields_in_the_last_column(self, env, tmp_path):
        """repair: a short row gets NULLs, a long row's surplus is joined into the last column; nothing is
        lost.
        """
        settings, db = env
        path = tmp_path / "ragged.csv"
        path.write_text(RAGGED)
        result = load_file(db, settings, LoadRequest(path=path, ragged_rows=RaggedPolicy.REPAIR))
        assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (4, 4, 0)
        assert export_rows(db, "ragged") == [
            ["id", "name", "note"],
            ["1", "a", "x"],
            ["2", "b", ""],
            ["3", "c", "y,extra,more"],
            ["4", "d", "z"],
        ]
        events = db.catalog.events
        with db.read() as conn:
            staged = conn.execute(sa.select(events.c.details).where(events.c.event == "staged")).scalar_one()
        assert '"repaired_lines":[3,4]' in staged

    def test_skip_writes_rejects_and_counts_them(self, env, tmp_path):
        """skip: bad rows go to a rejects file, are counted, and rows_read = loaded + rejected."""
        settings, db = env
        path = tmp_path / "ragged.csv"
        path.write_text(RAGGED)
        result = load_file(db, settings, LoadRequest(path=path, ragged_rows=RaggedPolicy.SKIP))
        assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (4, 2, 2)
        assert export_rows(db, "ragged") == [["id", "name", "note"], ["1", "a", "x"], ["4", "d", "z"]]
        rejects = list((settings.data_dir / "rejects").glob("*ragged.csv.rejects.csv"))
        assert len(rejects) == 1
        assert rejects[0].read_text().splitlines() == ["line,fields", "3,2,b", "4,3,c,y,extra,more"]

    @pytest.mark.parametrize("batch", [1, 2, 1000])
    def test_rows_keep_their_numbers_around_skipped_rows_across_batches(self, tmp_path, db_url, batch):
        """Rows after a skipped row keep their own _row_number, whatever the batch size."""
        settings = make_settings(tmp_path, db_url, ingest_batch_size=batch)
        db = open_db(settings)
        try:
            path = tmp_path / "gaps.csv"
            path.write_text("id,name\n1,a\n2,b,bad\n3,c\n4,d\nbad\n6,f\n7,g\n")
            result = load_file(db, settings, LoadRequest(path=path, ragged_rows=RaggedPolicy.SKIP))
            with db.read() as conn:
                got = conn.execute(sa.text("SELECT _row_number, id FROM ref.gaps ORDER BY _row_number")).all()
        finally:
            db.dispose()
        assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (7, 5, 2)
        assert [tuple(r) for r in got] == [(1, "1"), (3, "3"), (4, "4"), (6, "6"), (7, "7")]

    def test_error_policy_names_offending_rows_of_later_batches_too(self, tmp_path, db_url):
        """With small batches the ragged-row error still lists the offending lines of the next batch."""
        settings = make_settings(tmp_path, db_url, ingest_batch_size=2)
        db = open_db(settings)
        try:
            path = tmp_path / "ragged.csv"
            path.write_text("id,name\n1,a\n2\n3,c\n4\n5,e\n6,f\n7,g\n8,h\n9\n")
            with pytest.raises(RowError) as info:
                load_file(db, settings, LoadRequest(path=path))
            with db.read() as conn:
                assert not sa.inspect(conn).has_table("ragged", schema="ref")
        finally:
            db.dispose()
        assert info.value.rows == (3, 5)


class TestInferredTypes:
    def test_iso_datetimes_with_a_t_load_as_datetimes(self, env, tmp_path):
        """ISO datetimes written with a "T" (with or without six-digit fractions) become datetime values."""
        settings, db = env
        path = tmp_path / "stamps.csv"
        path.write_text(
            "id,at,precise\n1,2024-01-31T10:15:00,2024-01-31T10:15:00.250000\n2,,2024-02-01T00:00:00.500000\n"
        )
        load_file(db, settings, LoadRequest(path=path, type_policy=TypePolicy.INFER))
        with db.read() as conn:
            table = sa.Table("stamps", sa.MetaData(), schema="ref", autoload_with=conn)
            rows = conn.execute(sa.select(table.c.at, table.c.precise).order_by(table.c._row_number)).all()
        assert isinstance(table.c.at.type, sa.DateTime)
        assert rows == [
            (dt.datetime(2024, 1, 31, 10, 15), dt.datetime(2024, 1, 31, 10, 15, 0, 250000)),
            (None, dt.datetime(2024, 2, 1, 0, 0, 0, 500000)),
        ]

    def test_infer_types_integers_decimals_booleans_and_day_first_dates(self, env, tmp_path):
        """With infer, columns become integer, decimal, boolean, date and datetime; day-first dates parse
        right.
        """
        settings, db = env
        path = tmp_path / "prices.csv"
        path.write_text(
            "id,price,active,valid_from,stamp,code\n"
            "1,1.50,true,31/01/2024,2024-01-31 10:15:00,007\n"
            "2,20.25,false,01/02/2024,2024-02-01 08:00:00,010\n"
            "3,,true,15/03/2024,,999\n"
        )
        load_file(db, settings, LoadRequest(path=path, type_policy=TypePolicy.INFER))
        with db.read() as conn:
            table = sa.Table("prices", sa.MetaData(), schema="ref", autoload_with=conn)
            rows = conn.execute(sa.select(table).order_by(table.c._row_number)).mappings().all()
        assert isinstance(table.c.id.type, sa.Integer)
        assert isinstance(table.c.price.type, sa.Numeric)
        assert isinstance(table.c.code.type, sa.String)  # leading zeros keep a column text
        first = rows[0]
        assert first["id"] == 1 and Decimal(str(first["price"])) == Decimal("1.50")
        assert first["active"] in (True, 1)
        assert first["valid_from"] in (dt.date(2024, 1, 31), "2024-01-31")
        assert rows[1]["valid_from"] in (dt.date(2024, 2, 1), "2024-02-01")
        assert rows[2]["price"] is None and rows[2]["stamp"] is None
        assert first["code"] == "007"

    def test_one_misfit_value_keeps_the_column_text(self, env, tmp_path):
        """A single non-numeric value anywhere keeps a numeric-looking column as text."""
        settings, db = env
        path = tmp_path / "mixed.csv"
        path.write_text("n\n" + "".join(f"{i}\n" for i in range(2000)) + "n/a\n")
        load_file(db, settings, LoadRequest(path=path, type_policy=TypePolicy.INFER))
        with db.read() as conn:
            table = sa.Table("mixed", sa.MetaData(), schema="ref", autoload_with=conn)
        assert isinstance(table.c.n.type, sa.String)
