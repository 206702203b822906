"""The command line's arguments, help texts and examples (`backend.cli` runs the commands).

Every option has a help text and every subcommand an example, and the top-level help lists the
exit codes: `tests/test_cli_help.py` walks the parser to keep it so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from backend.masking import scrub

PROG = "refdata-monitor"

EXIT_CODES = """exit codes:
  0    success
  1    the file or request was refused (bad file, unknown table or load, not in error/)
  2    bad configuration or usage (the message names the setting, the file or the option)
  3    transient failure: the database is unavailable or the file changed; try again later
  130  interrupted (Ctrl-C; `run` stopped by SIGINT). `run` stopped by SIGTERM exits 0.

With --json, a failure prints {"error": {"kind", "message", "stage", "exit_code"}} on stdout."""

TOP_EXAMPLES = f"""examples:
  {PROG} init-db                      create the folders and the tracking tables
  {PROG} run                          the monitor daemon (what systemd runs)
  {PROG} load countries.csv --json    load one file now
  {PROG} status                       what loads, what waits, the last results and errors
  {PROG} history countries            the loads of one table
  {PROG} check-config --json          every setting and where its value came from

Settings come from the environment, .env, <CONFIG_DIR>/settings.yaml and the flags above; the
README's configuration table lists them all. `python -m backend` is the same command."""

#: (help line, examples) of each subcommand; the examples end up in its --help.
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "check-config": (
        "print the effective settings (secrets masked) and where each came from",
        ("check-config", "check-config --json | jq '.settings.MONITOR_INTERVAL'"),
    ),
    "init-db": (
        "create the dropoff, data and log folders, the schemas and the tracking tables (idempotent)",
        ("init-db", "init-db --database-url postgresql+psycopg://refdata@db/refdata"),
    ),
    "load": (
        "load one file now, with a progress bar on a terminal",
        (
            "load countries.csv",
            "load rates_2024.csv --table fx_rates --mode append --no-reference",
            "load messy.csv --ragged-rows repair --types infer --json",
        ),
    ),
    "detect": (
        "show what detection finds in a file (encoding, dialect, header, types)",
        ("detect countries.csv", "detect countries.csv --table countries --json"),
    ),
    "export": (
        "write a table (or one of its bkp versions) as UTF-8 CSV in file order",
        ("export countries > countries.csv", "export countries --version 3 --out v3.csv --json"),
    ),
    "restore": (
        "make a bkp version current again (itself a new versioned load)",
        ("restore countries --version 3",),
    ),
    "run": (
        "run the monitor daemon (SIGTERM: finish the current file and exit 0; Ctrl-C: 130)",
        ("run", "run --until-idle"),
    ),
    "status": (
        "what is loading, what waits for stability, the last results and errors",
        ("status", "status --json"),
    ),
    "history": (
        "the loads of one table or all tables, with size, duration, rows and column changes",
        ("history", "history countries --limit 50", "history countries --json"),
    ),
    "profile": (
        "what a load contained, per column (types, nulls, distinct, min/max, patterns)",
        ("profile countries", "profile countries --load 42 --json"),
    ),
    "retry": (
        "put a file from an error/ folder back into its drop folder for another attempt",
        ("retry 42", "retry dropoff/reference_data_table/fullload/error/20240131_083000_countries.csv"),
    ),
    "cancel": (
        "stop a running load between batches (it rolls back; the file goes to error/)",
        ("cancel 42",),
    ),
}


class Parser(argparse.ArgumentParser):
    """argparse, but its error messages (which echo the arguments) never show a password."""

    on_error: Callable[[str], None] | None = None

    def error(self, message: str) -> NoReturn:
        message = scrub(message)
        if Parser.on_error is not None:
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
            Parser.on_error(message)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _epilog(name: str) -> str:
    _help, examples = COMMANDS[name]
    lines = "\n".join(f"  {PROG} {example}" for example in examples)
    codes = "exit codes: 0 ok, 1 refused, 2 configuration, 3 transient (see refdata-monitor --help)"
    return f"example{'s' if len(examples) > 1 else ''}:\n{lines}\n\n{codes}"


def build_parser(on_error: Callable[[str], None] | None = None) -> argparse.ArgumentParser:
    """The whole command line. `on_error` is called with a usage error's message before exit 2."""
    Parser.on_error = on_error
    fmt = argparse.RawDescriptionHelpFormatter
    p = Parser(
        prog=PROG,
        description="Reference data file monitor: loads files dropped into folders into database tables.",
        epilog=f"{EXIT_CODES}\n\n{TOP_EXAMPLES}",
        formatter_class=fmt,
    )
    p.add_argument(
        "--env-file",
        default=".env",
        metavar="FILE",
        help="dotenv file to read (default: .env in the current folder)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="settings YAML file (default: <CONFIG_DIR>/settings.yaml when it exists)",
    )
    p.add_argument(
        "--config-dir",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="folder of settings.yaml and tables/*.yaml (overrides CONFIG_DIR)",
    )
    # Accepted before the command too; SUPPRESS keeps a subcommand's default from clobbering it.
    p.add_argument("--database-url", default=argparse.SUPPRESS, metavar="URL", help="override DATABASE_URL")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, *, json_output: bool = True) -> argparse.ArgumentParser:
        help_line = COMMANDS[name][0]
        sp = sub.add_parser(
            name, help=help_line, description=help_line, epilog=_epilog(name), formatter_class=fmt
        )
        sp.add_argument(
            "--database-url", default=argparse.SUPPRESS, metavar="URL", help="override DATABASE_URL"
        )
        if json_output:
            sp.add_argument(
                "--json", action="store_true", help="print the result (or the error) as one JSON document"
            )
        return sp

    command("check-config")
    command("init-db")

    load = command("load")
    load.add_argument("file", type=Path, help="the file to load (CSV, TSV, ...; as the daemon would)")
    load.add_argument("--table", default=None, help="target table (default: derived from the file name)")
    load.add_argument(
        "--mode",
        choices=["fullload", "append"],
        default="fullload",
        help="fullload replaces the table's rows (the old ones become a bkp version); append adds to them",
    )
    ref = load.add_mutually_exclusive_group()
    ref.add_argument(
        "--reference",
        dest="reference",
        action="store_true",
        default=True,
        help="reference data: keep a Reference_Data_Cfg row for the table (default)",
    )
    ref.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="not reference data: no Reference_Data_Cfg row",
    )
    load.add_argument(
        "--ragged-rows",
        choices=["error", "repair", "skip"],
        default=None,
        help="rows with too few/many fields: refuse the file, repair them, or skip them "
        "(default: the table's policy, then RAGGED_ROWS)",
    )
    load.add_argument(
        "--types",
        choices=["text", "infer"],
        default=None,
        help="column types: all text, or inferred from the whole file (default: TYPE_POLICY)",
    )
    load.add_argument(
        "--allow-empty", action="store_true", help="allow a header-only fullload (it empties the table)"
    )
    head = load.add_mutually_exclusive_group()
    head.add_argument(
        "--header",
        dest="header",
        action="store_const",
        const=True,
        default=None,
        help="the file's first table row is its header, whatever it looks like (e.g. ISO,Country)",
    )
    head.add_argument(
        "--no-header",
        dest="header",
        action="store_const",
        const=False,
        help="the file has no header: every row is data (columns column_1..N); "
        "default: the table's policy header:, else detected",
    )

    det = command("detect")
    det.add_argument("file", type=Path, help="the file to look at (nothing is loaded)")
    det.add_argument("--table", default=None, help="also compare the file's columns with this existing table")
    det_head = det.add_mutually_exclusive_group()
    det_head.add_argument(
        "--header",
        dest="header",
        action="store_const",
        const=True,
        default=None,
        help="read the first table row as the header, as `load --header` would",
    )
    det_head.add_argument(
        "--no-header", dest="header", action="store_const", const=False, help="read every row as data"
    )

    exp = command("export")
    exp.add_argument("table", help="the table to export")
    exp.add_argument("--out", type=Path, default=None, help="output file (default: stdout)")
    exp.add_argument("--version", type=int, default=None, metavar="N", help="export bkp version N instead")
    exp.add_argument("--sql-names", action="store_true", help="header with the normalised SQL column names")
    exp.add_argument(
        "--names",
        action="store_true",
        help="a table loaded from a file without a header: write its column names as a header line "
        "(by default there is none, as in the file)",
    )

    res = command("restore")
    res.add_argument("table", help="the table to restore")
    res.add_argument(
        "--version",
        type=int,
        required=True,
        metavar="N",
        help="the bkp version to make current (see history)",
    )

    run = command("run", json_output=False)
    run.add_argument("--until-idle", action="store_true", help="exit once every dropped file is handled")
    run.add_argument("--once", action="store_true", help="the same as --until-idle")

    command("status")
    prof = command("profile")
    prof.add_argument("table", help="the table whose load profile to show")
    prof.add_argument(
        "--load", type=int, default=None, metavar="ID", help="load id (default: the last successful load)"
    )
    hist = command("history")
    hist.add_argument("table", nargs="?", help="only this table (default: all tables)")
    hist.add_argument("--limit", type=int, default=20, metavar="N", help="show the last N loads (default 20)")
    retry = command("retry")
    retry.add_argument("target", help="a tracking id, or the path of a file in an error/ folder")
    cancel = command("cancel")
    cancel.add_argument("tracking_id", type=int, help="the tracking id of the running load (see status)")
    return p
