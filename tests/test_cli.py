"""The command line as an operator meets it: help, exit codes, JSON everywhere, tables, folders, progress."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from backend.cli_parser import COMMANDS, build_parser
from tests.support import run_cli, write_csv

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with the CLI's settings pointing into it (SQLite, no daemon)."""
    for name in ("DATABASE_URL", "DATA_DIR", "DROPOFF_BASE_PATH", "CONFIG_DIR", "LOG_FILE", "HEALTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEALTH_ENABLED", "false")
    return tmp_path


@pytest.fixture
def ready(workdir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """`workdir` after `init-db`: folders and tables exist."""
    code, _out, err = run_cli(["init-db"], capsys)
    assert code == 0, err
    return workdir


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


class TestHelp:
    def test_top_level_help_lists_the_exit_codes_and_examples(self, capsys):
        """--help explains 0, 1, 2, 3 and 130 and shows examples."""
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(["--help"])
        out = capsys.readouterr().out
        assert info.value.code == 0
        for code in ("0 ", "1 ", "2 ", "3 ", "130 "):
            assert f"\n  {code}" in out, code
        assert "examples:" in out and "refdata-monitor load countries.csv" in out

    @pytest.mark.parametrize("name", sorted(COMMANDS))
    def test_every_subcommand_has_help_and_an_example(self, name):
        """Each subcommand has a description and at least one example of itself in its --help."""
        sub = subcommands()[name]
        assert sub.description
        assert sub.epilog is not None and f"refdata-monitor {name}" in sub.epilog
        assert "example" in sub.epilog

    def test_every_option_has_a_help_text(self):
        """No option or argument of any command is left without a help text."""
        parsers = {"": build_parser(), **subcommands()}
        bare = [
            f"{name} {action.dest}"
            for name, parser in parsers.items()
            for action in parser._actions
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help
        ]
        assert bare == []


class TestExitCodes:
    def test_detect_of_a_missing_file_is_refused_not_transient(self, workdir, capsys):
        """detect /missing.csv exits 1 (refused) naming the file, not 3 (try again)."""
        code, _out, err = run_cli(["detect", str(workdir / "missing.csv")], capsys)
        assert code == 1 and "missing.csv does not exist" in err

    def test_load_of_a_missing_file_is_refused_with_a_json_error(self, ready, capsys):
        """load missing.csv --json exits 1 with an error object on stdout."""
        code, out, _err = run_cli(["load", "missing.csv", "--json"], capsys)
        body = json.loads(out)["error"]
        assert code == 1
        assert body["kind"] == "refused" and body["exit_code"] == 1 and "missing.csv" in body["message"]

    def test_history_of_an_unknown_table_says_so(self, ready, capsys):
        """history nosuch exits 1 saying no table of that name was loaded, with a close name."""
        write_csv(ready / "countries.csv", [["code"], ["DE"]])
        assert run_cli(["load", "countries.csv"], capsys)[0] == 0
        code, _out, err = run_cli(["history", "countrie"], capsys)
        assert code == 1 and "no loads of table 'countrie'" in err and "did you mean countries" in err

    def test_a_usage_error_with_json_is_a_json_object(self, workdir, capsys):
        """An unknown option with --json gives exit 2 and {"error": {"kind": "usage"}} on stdout."""
        with pytest.raises(SystemExit) as info:
            run_cli(["status", "--json", "--bogus"], capsys)
        out = capsys.readouterr().out
        assert info.value.code == 2
        assert json.loads(out)["error"]["kind"] == "usage"

    def test_a_configuration_error_with_json_is_a_json_object(self, workdir, capsys, monkeypatch):
        """A bad setting with --json gives exit 2 and a configuration error object naming it."""
        monkeypatch.setenv("WORKERS", "many")
        code, out, _err = run_cli(["status", "--json"], capsys)
        body = json.loads(out)["error"]
        assert code == 2 and body["kind"] == "configuration" and "WORKERS" in body["message"]

    @pytest.mark.postgres
    def test_an_unreachable_database_is_transient_with_json(self, workdir, capsys, pg_url):
        """A database that refuses connections gives exit 3 and a transient error object."""
        from sqlalchemy.engine import make_url

        from tests.daemon.support import free_port

        url = make_url(pg_url).set(port=free_port()).render_as_string(hide_password=False)
        code, out, _err = run_cli(["status", "--json", "--database-url", url], capsys)
        assert code == 3 and json.loads(out)["error"]["kind"] == "transient"


class TestFolders:
    def test_commands_refuse_to_create_folders_in_the_current_directory(self, workdir, capsys):
        """status in an empty folder exits 2 naming DATA_DIR and creates nothing there."""
        code, _out, err = run_cli(["status"], capsys)
        assert code == 2
        assert "SQLite database folder data" in err and "DATA_DIR" in err and "init-db" in err
        assert list(workdir.iterdir()) == []

    def test_run_refuses_a_missing_dropoff(self, workdir, capsys):
        """run without its dropoff folder exits 2 naming DROPOFF_BASE_PATH."""
        (workdir / "data").mkdir()
        code, _out, err = run_cli(["run", "--until-idle"], capsys)
        assert code == 2 and "dropoff folder dropoff" in (err + capsys.readouterr().err)
        assert not (workdir / "dropoff").exists()

    def test_init_db_creates_every_folder_from_the_settings(self, workdir, capsys, monkeypatch):
        """init-db creates the dropoff tree, the data folder and LOG_FILE's folder, then says nothing new."""
        monkeypatch.setenv("DROPOFF_BASE_PATH", str(workdir / "share" / "drop"))
        monkeypatch.setenv("DATA_DIR", str(workdir / "state"))
        monkeypatch.setenv("LOG_FILE", str(workdir / "logs" / "monitor.log"))
        code, out, err = run_cli(["init-db", "--json"], capsys)
        assert code == 0, err
        created = json.loads(out)["created"]
        assert str(workdir / "share" / "drop" / "reference_data_table" / "fullload" / "error") in created
        assert (workdir / "state" / "refdata.db").is_file() and (workdir / "logs").is_dir()
        assert json.loads(run_cli(["init-db", "--json"], capsys)[1])["created"] == []


class TestJsonEverywhere:
    def test_every_command_with_output_prints_json(self, ready, capsys):
        """Every command that prints a result (load, detect, history, status, ...) can print JSON."""
        write_csv(ready / "countries.csv", [["code", "name"], ["DE", "Germany"]])
        run_cli(["load", "countries.csv"], capsys)
        write_csv(ready / "countries.csv", [["code", "name"], ["DE", "Germany"], ["FR", "France"]])
        commands = [
            ["load", "countries.csv", "--json"],
            ["detect", "countries.csv", "--json"],
            ["history", "--json"],
            ["status", "--json"],
            ["profile", "countries", "--json"],
            ["export", "countries", "--out", "out.csv", "--json"],
            ["restore", "countries", "--version", "1", "--json"],
            ["check-config", "--json"],
            ["init-db", "--json"],
        ]
        for args in commands:
            code, out, err = run_cli(args, capsys)
            assert code == 0, (args, err)
            json.loads(out)

    def test_cancel_of_a_committed_load_says_too_late_in_json_with_exit_1(self, ready, capsys):
        write_csv(ready / "units.csv", [["unit"], ["kg"]])
        code, out, _err = run_cli(["load", "units.csv", "--json"], capsys)
        assert code == 0
        load_id = json.loads(out)["tracking_id"]
        code, out, _err = run_cli(["cancel", str(load_id), "--json"], capsys)
        assert code == 1
        assert json.loads(out) == {
            "load": load_id,
            "tracking_id": load_id,
            "status": "loaded",
            "error_message": None,
            "too_late": True,
        }

    def test_timestamps_are_iso_utc_with_the_zone(self, ready, capsys):
        """history and status give ISO 8601 timestamps in UTC that carry their zone."""
        write_csv(ready / "countries.csv", [["code"], ["DE"]])
        run_cli(["load", "countries.csv"], capsys)
        entry = json.loads(run_cli(["history", "--json"], capsys)[1])[0]
        result = json.loads(run_cli(["status", "--json"], capsys)[1])["last_results"][0]
        for value in (
            entry["created_at"],
            entry["finished_at"],
            result["created_at"],
            result["processed_at"],
        ):
            assert value.endswith("Z"), value
            assert datetime.fromisoformat(value).utcoffset().total_seconds() == 0


class TestTables:
    def test_history_is_an_aligned_table_with_sizes_durations_and_column_names(
        self, ready, capsys, monkeypatch
    ):
        """history prints a header and one aligned row per load with size, duration, rows and +/-columns."""
        (ready / "config" / "tables").mkdir(parents=True)
        (ready / "config" / "tables" / "codes.yaml").write_text("schema_evolution: add_columns\n")
        write_csv(ready / "codes.csv", [["code", "old"], ["A", "1"], ["B", "2"]])
        run_cli(["load", "codes.csv"], capsys)
        write_csv(ready / "codes.csv", [["code", "label"], ["A", "x"], ["B", "y"], ["C", "z"]])
        run_cli(["load", "codes.csv"], capsys)
        code, out, _ = run_cli(["history", "codes"], capsys)
        lines = out.splitlines()
        assert code == 0
        header = lines[0]
        for title in ("id", "finished (UTC)", "status", "size", "took", "rows", "change", "columns", "error"):
            assert title in header, title
        newest = next(line for line in lines if line.strip().startswith("2 "))
        assert "+label" in newest and "+1" in newest and " B" in newest and "None" not in out
        # Aligned: every row's status column starts where the header's does.
        at = header.index("status")
        assert all(line[at:].startswith(("loaded", "error")) for line in lines[2:] if line.strip())

    def test_status_lists_errors_with_their_reason(self, ready, capsys):
        """status shows the last results and the last errors as tables, the reason in full."""
        (ready / "bad.csv").write_text("a,b\n1,2\nx\n")
        run_cli(["load", "bad.csv"], capsys)
        code, out, _ = run_cli(["status"], capsys)
        assert code == 0
        assert "last results" in out and "last errors" in out and "line 3" in out
        assert "stage" in out and "to retry" in out


class TestProgress:
    def test_load_draws_a_progress_bar_on_a_terminal_only(self, ready):
        """On a TTY load shows the rows staged; piped, stderr holds no bar at all."""
        write_csv(ready / "big.csv", [["n", "text"], *[[str(i), f"row {i}"] for i in range(60_000)]])
        env = {**os.environ, "INGEST_BATCH_SIZE": "5000", "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING"}
        command = [sys.executable, "-m", "backend", "--env-file", "/nonexistent", "load", "big.csv"]
        piped = subprocess.run(command, cwd=ready, env=env, capture_output=True, text=True, timeout=120)
        assert piped.returncode == 0, piped.stderr
        assert "rows" not in piped.stderr and "━" not in piped.stderr
        main, secondary = pty.openpty()
        proc = subprocess.Popen(
            command, cwd=ready, env={**env, "COLUMNS": "100"}, stdout=subprocess.DEVNULL, stderr=secondary
        )
        os.close(secondary)
        seen = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if select.select([main], [], [], 0.5)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        os.close(main)
        assert proc.wait(30) == 0
        text = seen.decode("utf-8", "replace")
        assert "big.csv" in text and "60000/60000" in text.replace(",", "") and "rows" in text


class TestDetectFormats:
    def test_detect_names_the_format_and_the_sheets_of_a_workbook(self, ready, capsys):
        """`detect` on an .xlsx prints its format, the sheet it reads and all sheet names."""
        from tests.load.test_formats import HEADER, write_xlsx

        path = write_xlsx(ready / "codes.xlsx", sheets=("Data", "Notes"))
        code, out, _err = run_cli(["detect", str(path)], capsys)
        assert code == 0
        assert "Format          xlsx" in out
        assert "'Data' of 2: 'Data', 'Notes'" in out
        code, out, _err = run_cli(["detect", "--json", str(path)], capsys)
        assert code == 0
        data = json.loads(out)
        assert (data["format"], data["sheets"], data["headers"]) == ("xlsx", ["Data", "Notes"], HEADER)

    @pytest.mark.parametrize(
        ("name", "writer_name", "layout"),
        [
            ("codes.xlsx", "write_xlsx", True),
            ("codes.xlsm", "write_xlsm", True),
            ("codes.json", "write_json", False),
            ("codes.ndjson", "write_ndjson", False),
            ("codes.parquet", "write_parquet", False),
        ],
    )
    def test_detect_of_a_non_csv_file_shows_only_what_applies(self, ready, capsys, name, writer_name, layout):
        """No encoding, delimiter, quote or line endings for a workbook, JSON or Parquet; a
        workbook's rows above the table and trailer, none for JSON or Parquet; columns always."""
        import tests.load.test_formats as formats

        path = getattr(formats, writer_name)(ready / name)
        code, out, _err = run_cli(["detect", str(path)], capsys)
        assert code == 0
        for label in ("Encoding", "Delimiter", "Quote", "Escape", "Line endings", "Preamble lines"):
            assert label not in out
        assert ("Header rows" in out) is layout and ("Trailer rows" in out) is layout
        assert ("Rows above" in out) is layout
        assert "Data rows" in out and "Columns:" in out
        assert all(f"  {column}" in out for column in formats.HEADER)
        code, out, _err = run_cli(["detect", "--json", str(path)], capsys)
        data = json.loads(out)
        assert not {"encoding", "delimiter", "quotechar", "line_terminator"} & set(data)
        assert ("trailer_lines" in data) is layout
        assert data["headers"] == formats.HEADER and len(data["column_types"]) == len(formats.HEADER)

    def test_detect_of_a_compressed_csv_still_shows_its_dialect(self, ready, capsys):
        """A .csv.gz is delimited text: its encoding and delimiter apply and are shown."""
        from tests.load.test_formats import write_csv_gz

        path = write_csv_gz(ready / "codes.csv.gz")
        code, out, _err = run_cli(["detect", str(path)], capsys)
        assert code == 0
        assert "Format          csv, gzip-compressed" in out
        assert "Encoding" in out and "Delimiter       comma (',')" in out
        data = json.loads(run_cli(["detect", "--json", str(path)], capsys)[1])
        assert data["delimiter"] == ","

    def test_detect_of_parquet_under_infer_shows_the_files_types(self, ready, capsys, monkeypatch):
        """With TYPE_POLICY=infer, detect shows the Parquet schema's types (a code string stays text)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        monkeypatch.setenv("TYPE_POLICY", "infer")
        path = ready / "typed.parquet"
        pq.write_table(pa.table({"n": pa.array([1, 2], pa.int64()), "code": pa.array(["1", "2"])}), path)
        code, out, _err = run_cli(["detect", str(path)], capsys)
        assert code == 0
        assert "1  n         n       bigint" in out and "2  code      code    text(1)" in out


class TestLoadFormats:
    def test_load_of_an_xlsm_loads_the_sheet_and_exports_it_cell_for_cell(self, ready, capsys):
        """`load` on a macro-enabled workbook reads it as xlsm and `export` gives its cells back."""
        from tests.load.test_formats import EXPECTED, write_xlsm
        from tests.support import read_csv

        path = write_xlsm(ready / "codes.xlsm")
        code, out, err = run_cli(["load", str(path), "--json"], capsys)
        assert code == 0, err
        loaded = json.loads(out)
        assert loaded["rows_loaded"] == 3
        code, _out, err = run_cli(["export", "codes", "--out", "codes.csv"], capsys)
        assert code == 0, err
        assert read_csv(ready / "codes.csv") == EXPECTED
        code, out, _err = run_cli(["detect", "--json", str(path)], capsys)
        assert json.loads(out)["format"] == "xlsm"
