"""Command line: parse arguments, build Settings once, call one backend function, map errors to exit codes.

Exit codes: 0 success, 1 the file or request was refused (IngestError), 2 bad configuration,
3 transient failure (database unavailable, file changed: try again), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from backend.config import Settings, load_settings
from backend.errors import ConfigError, IngestError, RetryableError
from backend.masking import remember, scrub

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG, EXIT_RETRY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but its error messages (which echo the arguments) never show a password."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {scrub(message)}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m backend", description="Reference data file monitor.")
    p.add_argument("--env-file", default=".env", help="dotenv file to read (default .env)")
    p.add_argument("--config", default=None, help="YAML settings file (default config/settings.yaml)")
    # Accepted before the command too; SUPPRESS keeps a subcommand's default from clobbering it.
    p.add_argument("--database-url", default=argparse.SUPPRESS, help="override DATABASE_URL")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def with_db(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--database-url", default=argparse.SUPPRESS, help="override DATABASE_URL")
        return sp

    sub.add_parser("check-config", help="print the effective settings (secrets masked)")
    with_db(sub.add_parser("init-db", help="create schemas and tracking tables (idempotent)"))

    load = with_db(sub.add_parser("load", help="load one file now"))
    load.add_argument("file", type=Path)
    load.add_argument("--table", default=None, help="target table (default: derived from the file name)")
    load.add_argument("--mode", choices=["fullload", "append"], default="fullload")
    ref = load.add_mutually_exclusive_group()
    ref.add_argument("--reference", dest="reference", action="store_true", default=True)
    ref.add_argument("--no-reference", dest="reference", action="store_false")
    load.add_argument("--ragged-rows", choices=["error", "repair", "skip"], default=None)
    load.add_argument("--types", choices=["text", "infer"], default=None, help="column type policy")
    load.add_argument("--allow-empty", action="store_true", help="allow a header-only fullload")
    load.add_argument("--json", action="store_true", help="print the result as JSON")

    det = with_db(sub.add_parser("detect", help="show what would be detected in a file"))
    det.add_argument("file", type=Path)
    det.add_argument("--json", action="store_true")
    det.add_argument("--table", default=None, help="compare with this existing table")

    exp = with_db(sub.add_parser("export", help="write a table (or a bkp version) as CSV"))
    exp.add_argument("table")
    exp.add_argument("--out", type=Path, default=None, help="output file (default stdout)")
    exp.add_argument("--version", type=int, default=None, help="export this bkp version")
    exp.add_argument("--sql-names", action="store_true", help="header with the normalised column names")

    res = with_db(sub.add_parser("restore", help="make a bkp version current again"))
    res.add_argument("table")
    res.add_argument("--version", type=int, required=True)

    run = with_db(sub.add_parser("run", help="run the monitor daemon"))
    run.add_argument("--until-idle", action="store_true", help="exit once every dropped file is handled")
    run.add_argument("--once", action="store_true", help="alias of --until-idle")

    st = with_db(sub.add_parser("status", help="what is in flight, waiting, and the last results"))
    st.add_argument("--json", action="store_true")
    prof = with_db(sub.add_parser("profile", help="what a load contained, per column"))
    prof.add_argument("table")
    prof.add_argument("--load", type=int, default=None, help="load id (default: the last successful load)")
    prof.add_argument("--json", action="store_true")
    hist = with_db(sub.add_parser("history", help="loads of one table or all tables"))
    hist.add_argument("table", nargs="?")
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true")
    retry = with_db(sub.add_parser("retry", help="put an error/ file back for another attempt"))
    retry.add_argument("target", help="tracking id or path of a file in an error/ folder")
    cancel = with_db(sub.add_parser("cancel", help="stop a running load between batches"))
    cancel.add_argument("tracking_id", type=int)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    try:
        settings = load_settings(overrides, env_file=args.env_file, config_file=args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    remember(settings.secret_values())
    from backend.log import configure_logging

    configure_logging(settings.log_level, settings.log_format, settings.log_file)
    try:
        return _COMMANDS[args.command](settings, args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RetryableError as exc:
        print(f"error (transient, try again): {exc}", file=sys.stderr)
        return EXIT_RETRY
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `export ... | head`): not an error.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces a closed stream for interpreter exit
        return EXIT_OK


def _db(settings: Settings) -> Any:
    from backend.db import open_database

    db = open_database(settings)
    db.init_db()
    return db


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    for key, value in settings.effective().items():
        print(f"{key.upper()}={value}")
    return EXIT_OK


def cmd_init_db(settings: Settings, args: argparse.Namespace) -> int:
    _db(settings).dispose()
    print(f"database ready: {settings.masked_url} (schemas {settings.data_schema}, {settings.backup_schema})")
    return EXIT_OK


def cmd_load(settings: Settings, args: argparse.Namespace) -> int:
    from backend.load.loader import load_file
    from backend.models import LoadRequest, LoadType, RaggedPolicy, TypePolicy

    db = _db(settings)
    try:
        result = load_file(
            db,
            settings,
            LoadRequest(
                path=args.file,
                load_type=LoadType(args.mode),
                is_reference=args.reference,
                table=args.table,
                ragged_rows=RaggedPolicy(args.ragged_rows) if args.ragged_rows else None,
                type_policy=TypePolicy(args.types) if args.types else None,
                allow_empty_fullload=args.allow_empty,
            ),
        )
    finally:
        db.dispose()
    summary = {
        "tracking_id": result.tracking_id,
        "table": f"{settings.data_schema}.{result.table}",
        "load_type": result.load_type.value,
        "rows_read": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "rows_rejected": result.rows_rejected,
        "backup_version": result.backup_version,
        "seconds": round(result.seconds, 3),
        "encoding": result.detection.encoding,
        "delimiter": result.detection.delimiter,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"loaded {result.rows_loaded} rows into {summary['table']} ({result.load_type.value}, "
            f"load id {result.tracking_id}"
            + (
                f", previous rows kept as {settings.backup_schema}.{result.table}"
                f" version {result.backup_version}"
                if result.backup_version
                else ""
            )
            + f") in {result.seconds:.2f}s"
        )
    return EXIT_OK


def cmd_detect(settings: Settings, args: argparse.Namespace) -> int:
    from backend.db.dialects import adapter_for
    from backend.detection import detect
    from backend.detection.report import format_detection
    from backend.load.loader import header_names
    from backend.naming import normalize_columns, table_name_from_file

    detection = detect(args.file, settings)
    adapter = adapter_for(settings.url)
    columns = normalize_columns(
        header_names(detection), adapter.max_identifier_length, adapter.reserved_column_names
    )
    table = table_name_from_file(args.file, adapter.max_identifier_length)
    schema = _schema_report(settings, args.table, columns) if args.table else None
    if args.json:
        extra = {"schema_report": schema.to_dict()} if schema is not None else {}
        body = {**detection.to_dict(), "table": table, "columns": list(columns), **extra}
        print(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        print(f"Table: {settings.data_schema}.{table} (from the file name; see README, How a file travels)")
        print(format_detection(detection, columns))
        if schema is not None:
            print(f"schema vs {settings.data_schema}.{schema.table}: {schema.describe()}")
    return EXIT_OK


def _schema_report(settings: Settings, table: str, columns: tuple[str, ...]) -> Any:
    from backend.load.evolve import schema_report_for

    db = _db(settings)
    try:
        return schema_report_for(db, table, columns)
    finally:
        db.dispose()


def cmd_profile(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.profile_view import format_profile, read_profile

    db = _db(settings)
    try:
        entry = read_profile(db, args.table, args.load)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(entry, indent=2, ensure_ascii=False, default=str))
    else:
        print(format_profile(entry))
    return EXIT_OK


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.export import export_table

    db = _db(settings)
    try:
        if args.out is None:
            export_table(db, args.table, sys.stdout, version=args.version, sql_names=args.sql_names)
        else:
            with args.out.open("w", encoding="utf-8", newline="") as out:
                count = export_table(db, args.table, out, version=args.version, sql_names=args.sql_names)
            print(f"wrote {count} rows to {args.out}", file=sys.stderr)
    finally:
        db.dispose()
    return EXIT_OK


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.restore import restore_version

    db = _db(settings)
    try:
        tracking_id, rows, backup = restore_version(db, args.table, args.version)
    finally:
        db.dispose()
    print(
        f"restored version {args.version} of {args.table}: {rows} rows (load id {tracking_id}"
        + (f"; replaced rows kept as version {backup}" if backup else "")
        + ")"
    )
    return EXIT_OK


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    import signal
    import threading

    from backend.daemon.loop import run

    stop = threading.Event()
    signals_seen = [0]

    def handle(signum: int, _frame: Any) -> None:
        # Only set the event here: logging from a signal handler can deadlock on its lock.
        signals_seen[0] += 1
        if signals_seen[0] > 1 and signum == signal.SIGINT:
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGBREAK", None)):
        if sig is not None:
            signal.signal(sig, handle)
    return run(settings, stop, until_idle=args.until_idle or args.once)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    snapshot = _daemon_status(settings)
    if snapshot is None:
        from backend.ops.status import db_status

        db = _db(settings)
        try:
            snapshot = {
                "daemon": None,
                "note": "daemon not reachable; showing the database only",
                **db_status(db),
            }
        finally:
            db.dispose()
    if args.json:
        print(json.dumps(snapshot, indent=2, default=str))
        return EXIT_OK
    print(f"daemon: {snapshot.get('daemon') or 'not reachable (database view only)'}")
    for item in snapshot.get("in_flight", []):
        pct = item.get("progress_percent")
        print(
            f"  loading  #{item['id']} {item['file_name']} -> {item['table_name']}"
            f" {item.get('rows_done') or 0} rows" + (f" ({pct:.0f}%)" if pct is not None else "")
        )
    for item in snapshot.get("waiting_for_stability", []):
        print(f"  waiting  {item['file']} ({item['checks_done']}/{item['checks_needed']} stable checks)")
    print("last results:")
    for item in snapshot.get("last_results", [])[:10]:
        extra = f" rows={item['rows_loaded']}" if item.get("rows_loaded") is not None else ""
        print(f"  #{item['id']} {item['status']:<11} {item['file_name']} -> {item['table_name']}{extra}")
    errors = snapshot.get("last_errors", [])
    if errors:
        print("last errors:")
        for item in errors[:10]:
            print(f"  #{item['id']} {item['file_name']}: {item['error_message']}")
    return EXIT_OK


def _daemon_status(settings: Settings) -> dict[str, Any] | None:
    """The running daemon's /status (it knows what waits for stability), or None."""
    import urllib.request

    if not settings.health_enabled or settings.health_port == 0:
        return None
    host = "127.0.0.1" if settings.health_host in ("0.0.0.0", "") else settings.health_host  # noqa: S104
    request = urllib.request.Request(f"http://{host}:{settings.health_port}/status")
    if settings.health_token is not None:
        request.add_header("Authorization", f"Bearer {settings.health_token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - our own loopback endpoint
            data = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.status import history

    db = _db(settings)
    try:
        rows = history(db, args.table, args.limit)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    for r in rows:
        change = f" ({r['rows_change']:+d})" if r.get("rows_change") is not None else ""
        drift = f" structure changed (was {r['previous_fingerprint']})" if r.get("structure_changed") else ""
        version = f" bkp v{r['backup_version']}" if r.get("backup_version") else ""
        print(
            f"#{r['id']:<6} {r['created_at']} {r['status']:<11} {r['load_type']:<8} {r['table_name']}"
            f" rows={r['rows_loaded']}{change}{version}{drift}  {r['file_name']}"
        )
    return EXIT_OK


def cmd_retry(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.retry import retry

    db = _db(settings) if args.target.isdigit() else None
    try:
        moved = retry(db, settings.dropoff_base_path, args.target)
    finally:
        if db is not None:
            db.dispose()
    print(f"put back for another attempt: {moved}")
    return EXIT_OK


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.cancel import WAIT_SECONDS, cancel_load

    db = _db(settings)
    try:
        outcome = cancel_load(db, args.tracking_id)
    finally:
        db.dispose()
    number = args.tracking_id
    if outcome.too_late:
        print(f"too late: load {number} was already committed; undo it with restore", file=sys.stderr)
        return EXIT_REFUSED
    if outcome.status == "cancelled":
        print(f"cancelled: load {number} was rolled back; the table is unchanged and the file is in error/")
        return EXIT_OK
    if outcome.status is None:
        print(
            f"cancel requested, but load {number} still runs after {WAIT_SECONDS:.0f}s; it stops at its "
            "next batch (see status)",
            file=sys.stderr,
        )
        return EXIT_RETRY
    print(f"load {number} ended as {outcome.status} before the cancel took effect: {outcome.error_message}")
    return EXIT_OK


_COMMANDS = {
    "check-config": cmd_check_config,
    "init-db": cmd_init_db,
    "load": cmd_load,
    "detect": cmd_detect,
    "export": cmd_export,
    "restore": cmd_restore,
    "run": cmd_run,
    "status": cmd_status,
    "history": cmd_history,
    "profile": cmd_profile,
    "retry": cmd_retry,
    "cancel": cmd_cancel,
}
