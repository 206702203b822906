"""The CLI on real-world export shapes (issue 16): load --header/--no-header, notes, export --names."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import run_cli
from tests.test_cli import ready, workdir

__all__ = ["ready", "workdir"]  # fixtures shared with tests/test_cli.py

STACKED = (
    "Region,Stores,Revenue\nNorth,14,1203400\nSouth,22,2011000\n\n"
    "Store,Region,Staff,Revenue\nN01,North,14,95100\nN02,North,11,78800\nS01,South,19,120400\n"
)


class TestLoadOutput:
    def test_load_says_when_no_header_was_found(self, ready: Path, capsys):
        """`load` of id,1,2,3 over numbers says no header was found and how to force one."""
        (ready / "grid.csv").write_text("id,1,2,3\n7,4,5,6\n")
        code, out, err = run_cli(["load", "grid.csv"], capsys)
        assert code == 0, err
        assert "loaded 2 rows" in out
        assert "no header row found: columns named column_1…column_4; use --header to force one" in out

    def test_header_flag_forces_the_header(self, ready: Path, capsys):
        """`load --header` takes the first row as the header and prints no such note."""
        (ready / "grid.csv").write_text("id,1,2,3\n7,4,5,6\n")
        code, out, err = run_cli(["load", "grid.csv", "--header", "--json"], capsys)
        assert code == 0, err
        summary = json.loads(out)
        assert (summary["rows_loaded"], summary["header_rows"], summary["notes"]) == (1, 1, [])

    def test_no_header_flag_loads_the_first_row_as_data(self, ready: Path, capsys):
        """`load --no-header` keeps EUR,Euro as a row."""
        (ready / "ccy.csv").write_text("EUR,Euro\nUSD,Dollar\nGBP,Pound\n")
        code, out, err = run_cli(["load", "ccy.csv", "--no-header"], capsys)
        assert code == 0, err
        assert "loaded 3 rows" in out

    def test_load_reports_the_dropped_trailer(self, ready: Path, capsys):
        """`load` names the totals row it did not load."""
        (ready / "sales.csv").write_text("code,amount\nA,10\nB,20\nTotal,30\n")
        code, out, err = run_cli(["load", "sales.csv"], capsys)
        assert code == 0, err
        assert "loaded 2 rows" in out and "1 trailer record not loaded: 'Total,30'" in out

    def test_stacked_policy_load_names_the_rejects_file(self, ready: Path, capsys):
        """With stacked_tables: first, `load` says which table it read and where the others went."""
        (ready / "config" / "tables").mkdir(parents=True, exist_ok=True)
        (ready / "config" / "tables" / "stores.yaml").write_text("stacked_tables: first\n")
        (ready / "stores.csv").write_text(STACKED)
        code, out, err = run_cli(["load", "stores.csv", "--json"], capsys)
        assert code == 0, err
        summary = json.loads(out)
        assert summary["rows_loaded"] == 2 and summary["block_records_rejected"] == 4
        assert Path(summary["rejects_file"]).read_text().startswith("line,fields\n5,Store,Region")

    def test_stacked_file_without_policy_is_refused_naming_the_blocks(self, ready: Path, capsys):
        """Without a policy `load` exits 1 and its message lists every block."""
        (ready / "stores.csv").write_text(STACKED)
        code, _out, err = run_cli(["load", "stores.csv"], capsys)
        assert code == 1
        assert "lines 1-3 (3 columns)" in err and "lines 5-8 (4 columns)" in err


class TestExport:
    def test_headerless_table_exports_without_header_unless_names(self, ready: Path, capsys):
        """`export` writes no invented header line for a headerless file; --names adds the names."""
        (ready / "rates.csv").write_text("1,2024-01-31,18.5\n2,2024-02-29,18.9\n")
        assert run_cli(["load", "rates.csv"], capsys)[0] == 0
        code, out, _err = run_cli(["export", "rates"], capsys)
        assert code == 0 and out == "1,2024-01-31,18.5\n2,2024-02-29,18.9\n"
        code, out, _err = run_cli(["export", "rates", "--names"], capsys)
        assert code == 0 and out.splitlines()[0] == "column_1,column_2,column_3"


class TestDetectOutput:
    def test_detect_shows_skipped_title_and_dropped_trailing_columns(self, workdir: Path, capsys):
        """`detect` lists the title line it skipped and the trailing delimiter it dropped."""
        (workdir / "spend.csv").write_text(
            "Riverside Council - Expenditure over 500 - October 2023,,,\n,,,\n"
            "Department,Supplier,Amount,\nHousing,Northway,1520.00,\nParks,Greenway,80.50,\n"
            "Roads,Tarmac Ltd,99.99,\n"
        )
        code, out, err = run_cli(["detect", "spend.csv"], capsys)
        assert code == 0, err
        assert "Skipped above the header:" in out and "Riverside Council" in out
        assert "Dropped: 1 empty trailing field per row" in out

    def test_detect_reads_the_file_as_the_tables_policy_says(self, workdir: Path, capsys):
        """`detect` applies the table policy (stacked tables listed, one read) and honours --no-header."""
        (workdir / "config" / "tables").mkdir(parents=True)
        (workdir / "config" / "tables" / "stores.yaml").write_text("stacked_tables: largest\n")
        (workdir / "stores.csv").write_text(STACKED)
        code, out, err = run_cli(["detect", "stores.csv"], capsys)
        assert code == 0, err
        assert "Stacked tables:" in out and "2. lines 5-8 (4 columns), 3 rows  (read)" in out
        (workdir / "ccy.csv").write_text("EUR,Euro\nUSD,Dollar\nGBP,Pound\n")
        code, out, err = run_cli(["detect", "ccy.csv", "--no-header"], capsys)
        assert code == 0, err
        assert "(names generated) (forced)" in out
