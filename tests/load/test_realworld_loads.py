"""Loads of real-world export shapes (issue 16): forced headers, trailers, stacked tables, export."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.errors import ConfigError, DetectionError
from backend.load.loader import load_file
from backend.load.stacked import load_notes
from backend.models import LoadRequest
from backend.ops.export import export_table
from backend.policies import load_table_policy
from tests.support import export_rows

STACKED = (
    "Region,Stores,Revenue\nNorth,14,1203400\nSouth,22,2011000\n\n"
    "Store,Region,Staff,Revenue\nN01,North,14,95100\nN02,North,11,78800\nS01,South,19,120400\n"
)


def policy(settings, table: str, text: str) -> None:
    folder = settings.config_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{table}.yaml").write_text(text)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def stored(db, table: str) -> list[tuple]:
    with db.read() as conn:
        tbl = sa.Table(table, sa.MetaData(), schema="ref", autoload_with=conn)
        columns = [c for c in tbl.columns if not c.name.startswith("_")]
        return [tuple(r) for r in conn.execute(sa.select(*columns).order_by(tbl.c._row_number))]


def tracked_detection(db, tracking_id: int) -> dict:
    t = db.catalog.tracking
    with db.read() as conn:
        return json.loads(conn.execute(sa.select(t.c.detection).where(t.c.id == tracking_id)).scalar_one())


class TestHeaderChoice:
    def test_no_header_found_is_said_in_the_load_result(self, env, tmp_path):
        """A file whose first row reads as data loads as column_1.. and the result says so."""
        settings, db = env
        result = load_file(db, settings, LoadRequest(path=write(tmp_path, "grid.csv", "id,1,2,3\n7,4,5,6\n")))
        assert result.detection.header_rows == 0 and result.rows_loaded == 2
        assert any(n.startswith("no header row found") and "--header" in n for n in load_notes(result))

    def test_header_flag_makes_the_first_row_the_header(self, env, tmp_path):
        """LoadRequest(header=True) takes `id,1,2,3` as the header: one data row, no note."""
        settings, db = env
        path = write(tmp_path, "grid.csv", "id,1,2,3\n7,4,5,6\n")
        result = load_file(db, settings, LoadRequest(path=path, header=True))
        assert result.detection.header_rows == 1 and result.rows_loaded == 1
        assert stored(db, "grid") == [("7", "4", "5", "6")] or stored(db, "grid") == [(7, 4, 5, 6)]
        assert export_rows(db, "grid") == [["id", "1", "2", "3"], ["7", "4", "5", "6"]]
        assert not load_notes(result)

    def test_policy_header_absent_keeps_the_first_row_as_data(self, env, tmp_path):
        """header: absent in the table's policy loads `EUR,Euro` as a row, not as the header."""
        settings, db = env
        policy(settings, "ccy", "header: absent\n")
        path = write(tmp_path, "ccy.csv", "EUR,Euro\nUSD,Dollar\nGBP,Pound\n")
        result = load_file(db, settings, LoadRequest(path=path))
        assert result.rows_loaded == 3 and result.detection.header_forced
        assert stored(db, "ccy")[0] == ("EUR", "Euro")

    def test_flag_wins_over_the_policy(self, env, tmp_path):
        """--header on the command line beats header: absent in the policy."""
        settings, db = env
        policy(settings, "ccy", "header: absent\n")
        path = write(tmp_path, "ccy.csv", "EUR,Euro\nUSD,Dollar\nGBP,Pound\n")
        assert load_file(db, settings, LoadRequest(path=path, header=True)).rows_loaded == 2

    @pytest.mark.parametrize(
        "text,expected",
        [
            ("", (None, True, None)),
            ("header: present\n", (True, True, None)),
            (
                "header: absent\ntrailer_detection: false\nstacked_tables: largest\n",
                (False, False, "largest"),
            ),
        ],
    )
    def test_layout_keys_parse(self, env, text, expected):
        """header, trailer_detection and stacked_tables read as the values detect() takes."""
        settings, _ = env
        policy(settings, "t", text)
        parsed = load_table_policy(settings.config_dir, "t")
        assert (parsed.header, parsed.trailer_detection, parsed.stacked_tables) == expected

    @pytest.mark.parametrize(
        "text", ["header: no\n", "header: maybe\n", "trailer_detection: 'off'\n", "stacked_tables: all\n"]
    )
    def test_unclear_policy_values_are_refused(self, env, text):
        """A YAML boolean or an unknown word for header/trailer_detection is a ConfigError."""
        settings, _ = env
        policy(settings, "t", text)
        with pytest.raises(ConfigError):
            load_table_policy(settings.config_dir, "t")


class TestTrailer:
    TEXT = "code,amount\nA,10\nB,20\nTotal,30\n"

    def test_dropped_trailer_is_reported_and_tracked(self, env, tmp_path):
        """A matching totals row is not loaded; the result notes it and the tracking row records it."""
        settings, db = env
        result = load_file(db, settings, LoadRequest(path=write(tmp_path, "sales.csv", self.TEXT)))
        assert result.rows_loaded == 2
        assert any("trailer record not loaded" in n and "Total,30" in n for n in load_notes(result))
        recorded = tracked_detection(db, result.tracking_id)
        assert [t["text"] for t in recorded["trailer_lines"]] == ["Total,30"]

    def test_policy_turns_trailer_detection_off(self, env, tmp_path):
        """trailer_detection: false loads the totals row as the data row it is written as."""
        settings, db = env
        policy(settings, "sales", "trailer_detection: false\n")
        result = load_file(db, settings, LoadRequest(path=write(tmp_path, "sales.csv", self.TEXT)))
        assert result.rows_loaded == 3 and not result.detection.trailer_lines
        assert [r[0] for r in stored(db, "sales")] == ["A", "B", "Total"]

    def test_real_rows_that_look_like_totals_are_loaded(self, env, tmp_path):
        """sum,3 and count,2 in a metric table are rows: all four load."""
        settings, db = env
        path = write(tmp_path, "metrics.csv", "metric,weight\nlatency,10\nerrors,5\nsum,3\ncount,2\n")
        assert load_file(db, settings, LoadRequest(path=path)).rows_loaded == 4


class TestStackedTables:
    def test_refused_naming_each_block(self, env, tmp_path):
        """Without a policy the file is refused with each block's lines and width."""
        settings, db = env
        with pytest.raises(DetectionError, match=r"lines 1-3 \(3 columns\).*lines 5-8 \(4 columns\)") as info:
            load_file(db, settings, LoadRequest(path=write(tmp_path, "stores.csv", STACKED)))
        assert [b["width"] for b in info.value.details["blocks"]] == [3, 4]

    def test_first_loads_the_first_block_and_rejects_the_others(self, env, tmp_path):
        """stacked_tables: first loads the summary; the detail block's records go to the rejects file."""
        settings, db = env
        policy(settings, "stores", "stacked_tables: first\n")
        result = load_file(db, settings, LoadRequest(path=write(tmp_path, "stores.csv", STACKED)))
        assert result.rows_loaded == 2 and result.block_records_rejected == 4
        assert [r[0] for r in stored(db, "stores")] == ["North", "South"]
        assert result.rejects_path is not None
        rejected = list(csv.reader(io.StringIO(result.rejects_path.read_text())))
        assert rejected[0] == ["line", "fields"]
        assert rejected[1] == ["5", "Store", "Region", "Staff", "Revenue"] and rejected[-1][0] == "8"
        assert any("loaded table 1" in n and "4 records" in n for n in load_notes(result))
        e = db.catalog.events
        with db.read() as conn:
            details = conn.execute(
                sa.select(e.c.details).where(
                    e.c.tracking_id == result.tracking_id, e.c.event == "stacked_tables_rejected"
                )
            ).scalar_one()
        assert json.loads(details) == {"records": 4}

    def test_largest_loads_the_detail_block(self, env, tmp_path):
        """stacked_tables: largest loads the block with most rows; the summary goes to the rejects."""
        settings, db = env
        policy(settings, "stores", "stacked_tables: largest\n")
        result = load_file(db, settings, LoadRequest(path=write(tmp_path, "stores.csv", STACKED)))
        assert result.rows_loaded == 3 and result.block_records_rejected == 3
        assert [r[0] for r in stored(db, "stores")] == ["N01", "N02", "S01"]
        assert result.rejects_path is not None
        lines = [r[0] for r in csv.reader(io.StringIO(result.rejects_path.read_text()))][1:]
        assert lines == ["1", "2", "3"]

    def test_single_table_writes_no_rejects(self, env, tmp_path):
        """A policy for stacked tables changes nothing for a file of one table."""
        settings, db = env
        policy(settings, "plain", "stacked_tables: first\n")
        result = load_file(db, settings, LoadRequest(path=write(tmp_path, "plain.csv", "a,b\nx,y\n")))
        assert result.rejects_path is None and result.block_records_rejected == 0


class TestExportHeaders:
    def test_header_only_file_exports_its_original_header(self, env, tmp_path):
        """A zero-row table exports the header as the file wrote it, not the SQL names."""
        settings, db = env
        path = write(tmp_path, "suppliers.csv", "Supplier ID,Supplier Name,VAT Number\n")
        load_file(db, settings, LoadRequest(path=path, allow_empty_fullload=True))
        assert export_rows(db, "suppliers") == [["Supplier ID", "Supplier Name", "VAT Number"]]

    def test_headerless_file_exports_without_a_header_line(self, env, tmp_path):
        """A table from a file without a header exports only the rows; names=True adds the names."""
        settings, db = env
        text = "1,2024-01-31,18.5\n2,2024-02-29,18.9\n"
        load_file(db, settings, LoadRequest(path=write(tmp_path, "rates.csv", text)))
        out = io.StringIO()
        assert export_table(db, "rates", out) == 2
        assert out.getvalue() == text
        named = io.StringIO()
        export_table(db, "rates", named, names=True)
        assert named.getvalue().splitlines()[0] == "column_1,column_2,column_3"

    def test_clashing_headers_export_both_originals(self, env, tmp_path):
        """Temp (°C) and Temp [°C] load as two columns and export under their own texts."""
        settings, db = env
        path = write(tmp_path, "temps.csv", "Temp (°C),Temp [°C]\n1.5,2.5\n")
        load_file(db, settings, LoadRequest(path=path))
        assert export_rows(db, "temps")[0] == ["Temp (°C)", "Temp [°C]"]
