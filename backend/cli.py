"""Command line: parse arguments, build Settings once, call one backend function, map errors to exit codes.

Exit codes: 0 success, 1 the file or request was refused (IngestError), 2 bad configuration or
usage, 3 transient failure (database unavailable, file changed: try again), 130 interrupted
(Ctrl-C). With ``--json`` a failure is a JSON object on stdout (``{"error": {...}}``) and the
same exit code. Installed as the ``refdata-monitor`` command; ``python -m backend`` is the same.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import structlog

from backend.cli_parser import build_parser
from backend.config import Settings, load_settings, setting_sources, settings_files
from backend.errors import ConfigError, IngestError, NotFoundError, RetryableError
from backend.masking import remember, scrub

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG, EXIT_RETRY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_KINDS = {EXIT_REFUSED: "refused", EXIT_CONFIG: "configuration", EXIT_RETRY: "transient"}
_PREFIX = {
    EXIT_REFUSED: "error",
    EXIT_CONFIG: "configuration error",
    EXIT_RETRY: "error (transient, try again)",
}

log = structlog.get_logger("backend.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (see the module docstring)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    json_errors = "--json" in args_list
    args = build_parser(on_error=lambda message: _usage_error(message, json_errors)).parse_args(args_list)
    settings: Settings | None = None
    try:
        settings = load_settings(_overrides(args), env_file=args.env_file, config_file=args.config)
        remember(settings.secret_values())
        if args.command == "init-db":
            from backend.ops.setup import create_folders

            # Before logging is set up: LOG_FILE's folder is one of the folders it creates.
            args.created = create_folders(settings)
        from backend.log import configure_logging

        configure_logging(settings.log_level, settings.log_format, settings.log_file)
        return _COMMANDS[args.command](settings, args)
    except ConfigError as exc:
        return _fail(args, exc, EXIT_CONFIG, logged=settings is not None)
    except RetryableError as exc:
        return _fail(args, exc, EXIT_RETRY, logged=settings is not None)
    except IngestError as exc:
        return _fail(args, exc, EXIT_REFUSED, logged=settings is not None)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `export ... | head`): not an error.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces a closed stream for interpreter exit
        return EXIT_OK


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    if getattr(args, "config_dir", None):
        overrides["config_dir"] = args.config_dir
    return overrides


def _usage_error(message: str, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"error": {"kind": "usage", "message": scrub(message), "exit_code": EXIT_CONFIG}}))
    sys.exit(EXIT_CONFIG)


def _fail(args: argparse.Namespace, exc: IngestError, code: int, *, logged: bool) -> int:
    """Report a failure: a JSON object with --json, one log line for the daemon, else one stderr line."""
    message = str(exc)
    if getattr(args, "json", False):
        body = {"kind": _KINDS[code], "message": message, "stage": exc.stage, "exit_code": code}
        if exc.path is not None:
            body["file"] = str(exc.path)
        print(json.dumps({"error": body}, ensure_ascii=False))
    elif args.command == "run" and logged:
        # Through the log, so that with LOG_FORMAT=json journald gets a JSON line like every other.
        log.error("start-up failed", error=message, kind=_KINDS[code], exit_code=code)
    else:
        print(f"{_PREFIX[code]}: {message}", file=sys.stderr)
    return code


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _db(settings: Settings) -> Any:
    from backend.db import open_database
    from backend.ops.setup import check_folders

    check_folders(settings, daemon=False)
    db = open_database(settings)
    db.init_db()
    return db


def _existing_file(path: Any) -> None:
    """A file named on the command line must exist: that is a refusal (1), not a transient error (3)."""
    if not path.exists():
        raise NotFoundError(f"{path} does not exist", path=path)
    if not path.is_file():
        raise NotFoundError(f"{path} is not a file", path=path)


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    from backend.policies import check_table_policies

    policies = [str(p) for p in check_table_policies(settings.config_dir)]
    overrides = _overrides(args)
    sources = setting_sources(overrides, env_file=args.env_file, config_file=args.config)
    files = settings_files(overrides, env_file=args.env_file, config_file=args.config)
    values = settings.effective()
    if args.json:
        _print_json(
            {
                "settings": {k.upper(): {"value": v, "source": sources[k]} for k, v in values.items()},
                "files": files,
                "table_policies": policies,
            }
        )
        return EXIT_OK
    width = max(len(f"{k.upper()}={v}") for k, v in values.items())
    for key, value in values.items():
        print(f"{f'{key.upper()}={value}':<{width}}  # {sources[key]}")
    print(f"# settings.yaml: {files['settings.yaml'] or 'none'}; .env: {files['.env'] or 'none'}")
    print(f"# table policies: {', '.join(policies) or 'none'}")
    return EXIT_OK


def cmd_init_db(settings: Settings, args: argparse.Namespace) -> int:
    from backend.db import open_database

    created = args.created
    from backend.load.versions import adopt_all

    db = open_database(settings)
    try:
        db.init_db()
        adopted = adopt_all(db)
    finally:
        db.dispose()
    if args.json:
        _print_json(
            {
                "database": settings.masked_url,
                "schemas": [settings.data_schema, settings.backup_schema],
                "created": [str(p) for p in created],
                "moved_to_version_layout": adopted,
            }
        )
        return EXIT_OK
    for path in created:
        print(f"created {path}")
    for table in adopted:
        print(f"moved {settings.data_schema}.{table} and its backups to the version layout")
    print(f"database ready: {settings.masked_url} (schemas {settings.data_schema}, {settings.backup_schema})")
    return EXIT_OK


def cmd_load(settings: Settings, args: argparse.Namespace) -> int:
    from backend.load.loader import LoadHooks, load_file
    from backend.load.stacked import load_notes
    from backend.models import LoadRequest, LoadType, RaggedPolicy, TypePolicy
    from backend.ops.progress import progress_bar

    _existing_file(args.file)
    db = _db(settings)
    try:
        with progress_bar(args.file.name, enabled=sys.stderr.isatty() and not args.json) as on_progress:
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
                    header=args.header,
                ),
                LoadHooks(on_progress=on_progress),
            )
    finally:
        db.dispose()
    notes = load_notes(result)
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
        "header_rows": result.detection.header_rows,
        "trailer_lines": [s.to_dict() for s in result.detection.trailer_lines],
        "blocks": [b.to_dict() for b in result.detection.blocks],
        "block": result.detection.block,
        "block_records_rejected": result.block_records_rejected,
        "rejects_file": str(result.rejects_path) if result.rejects_path else None,
        "notes": notes,
    }
    if args.json:
        print(json.dumps(summary))
        return EXIT_OK
    kept = (
        f", previous rows kept as {settings.backup_schema}.{result.table} version {result.backup_version}"
        if result.backup_version
        else ""
    )
    print(
        f"loaded {result.rows_loaded} rows into {summary['table']} ({result.load_type.value}, "
        f"load id {result.tracking_id}{kept}) in {result.seconds:.2f}s"
    )
    for note in notes:
        print(f"  {note}")
    if result.rejects_path:
        print(f"  rejected records: {result.rejects_path}")
    return EXIT_OK


def cmd_detect(settings: Settings, args: argparse.Namespace) -> int:
    from backend.db.dialects import adapter_for
    from backend.detection.report import applicable_facts, format_detection
    from backend.load.loader import header_names
    from backend.load.readers.source import describe_format, detect_file
    from backend.naming import normalize_columns, table_name_from_file
    from backend.policies import load_table_policy

    _existing_file(args.file)
    adapter = adapter_for(settings.url)
    table = table_name_from_file(args.file, adapter.max_identifier_length)
    # The table's policy reads the file as `load` would (sheet, forced header, trailer, stacked tables).
    policy = load_table_policy(settings.config_dir, table)
    detection = detect_file(
        args.file,
        settings,
        sheet=policy.sheet,
        header=args.header if args.header is not None else policy.header,
        trailer_detection=policy.trailer_detection,
        stacked_tables=policy.stacked_tables,
    )
    columns = normalize_columns(
        header_names(detection), adapter.max_identifier_length, adapter.reserved_column_names
    )
    schema = _schema_report(settings, args.table, columns) if args.table else None
    if args.json:
        extra = {"schema_report": schema.to_dict()} if schema is not None else {}
        facts = applicable_facts(detection)
        _print_json({**facts, "table": table, "columns": list(columns), **extra})
    else:
        print(f"Table: {settings.data_schema}.{table} (from the file name; see README, How a file travels)")
        print("\n".join(describe_format(detection)))
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
        _print_json(entry)
    else:
        print(format_profile(entry))
    return EXIT_OK


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.export import export_table

    if args.json and args.out is None:
        raise ConfigError("export --json needs --out FILE: without it the CSV itself goes to stdout")
    db = _db(settings)
    try:
        if args.out is None:
            export_table(
                db, args.table, sys.stdout, version=args.version, sql_names=args.sql_names, names=args.names
            )
            return EXIT_OK
        with args.out.open("w", encoding="utf-8", newline="") as out:
            count = export_table(
                db, args.table, out, version=args.version, sql_names=args.sql_names, names=args.names
            )
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"table": args.table, "version": args.version, "rows": count, "out": str(args.out)}))
    else:
        print(f"wrote {count} rows to {args.out}", file=sys.stderr)
    return EXIT_OK


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.restore import restore_version

    db = _db(settings)
    try:
        tracking_id, rows, backup = restore_version(db, args.table, args.version)
    finally:
        db.dispose()
    if args.json:
        body = {"table": args.table, "version": args.version, "rows": rows, "tracking_id": tracking_id}
        print(json.dumps({**body, "backup_version": backup}))
        return EXIT_OK
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
    from backend.ops.setup import check_folders
    from backend.policies import check_table_policies

    check_folders(settings, daemon=True)
    check_table_policies(settings.config_dir)
    stop = threading.Event()
    signals_seen: list[int] = []

    def handle(signum: int, _frame: Any) -> None:
        # Only set the event here: logging from a signal handler can deadlock on its lock.
        signals_seen.append(signum)
        if len(signals_seen) > 1 and signum == signal.SIGINT:
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGBREAK", None)):
        if sig is not None:
            signal.signal(sig, handle)
    code = run(settings, stop, until_idle=args.until_idle or args.once)
    # Ctrl-C is an interruption (130, as shells expect); SIGTERM is the service manager's normal stop.
    return EXIT_INTERRUPTED if signals_seen[:1] == [signal.SIGINT] else code


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.views import print_status

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
        _print_json(snapshot)
    else:
        print_status(snapshot)
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
    from backend.ops.history import history
    from backend.ops.views import print_history

    db = _db(settings)
    try:
        rows = history(db, args.table, args.limit)
    finally:
        db.dispose()
    if args.json:
        _print_json(rows)
    else:
        print_history(rows)
    return EXIT_OK


def cmd_retry(settings: Settings, args: argparse.Namespace) -> int:
    from backend.ops.retry import retry

    db = _db(settings) if args.target.isdigit() else None
    try:
        moved = retry(db, settings.dropoff_base_path, args.target)
    finally:
        if db is not None:
            db.dispose()
    if args.json:
        print(json.dumps({"put_back": str(moved)}))
    else:
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
    code = EXIT_REFUSED if outcome.too_late else EXIT_RETRY if outcome.status is None else EXIT_OK
    if args.json:
        _print_json({"load": number, **dataclasses.asdict(outcome), "too_late": outcome.too_late})
        return code
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


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
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
