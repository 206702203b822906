"""Logging set-up, called once from the CLI: structlog for our events, stdlib routed through it.

Console output goes to stderr (stdout belongs to command output such as ``export``); with
LOG_FILE set, JSON lines also go to a rotating file. SQLAlchemy, watchdog and APScheduler
records pass through the same processors, so every line has one shape. Uncaught exceptions, in
the main thread or any other, are logged through the same chain (so a crash with LOG_FORMAT=json
is a JSON line too), and a LOG_FILE that cannot be written is a ConfigError, not a traceback.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from backend.errors import ConfigError
from backend.masking import scrub

_SECRET_KEYS = ("password", "pwd", "token", "secret")
#: Values that say whether a secret is configured without revealing it (``token=set``).
PRESENCE = ("set", "unset")


def presence(value: object) -> str:
    """``"set"`` or ``"unset"``: what a log line may say about a secret."""
    return PRESENCE[0] if value else PRESENCE[1]


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_KEYS) and event[key] not in PRESENCE:
            event[key] = "********"
    return event


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    structlog.get_logger("backend").critical("crashed", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    structlog.get_logger("backend").critical(
        "thread crashed",
        thread=args.thread.name if args.thread is not None else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _scrub_values(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_values(v) for v in value]
    return value


def _scrub(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Mask URLs and known secrets in every value, tracebacks included (they are text by now)."""
    return {key: _scrub_values(value) for key, value in event.items()}


def configure_logging(level: str = "INFO", fmt: str = "console", log_file: Path | None = None) -> None:
    """Route structlog and stdlib logging to stderr (and optionally a rotating JSON file)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    json_processors: list[Any] = [
        structlog.processors.dict_tracebacks,
        _scrub,
        structlog.processors.JSONRenderer(),
    ]
    console_processors: list[Any] = (
        json_processors
        if fmt == "json"
        else [
            structlog.processors.format_exc_info,
            _scrub,
            # plain_traceback: the traceback is already text (and scrubbed) by format_exc_info.
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    )
    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *console_processors],
        )
    )
    handlers.append(console)
    if log_file is not None:
        rotating = _rotating_file(log_file)
        rotating.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *json_processors],
            )
        )
        handlers.append(rotating)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()  # a previous LOG_FILE must not stay open (configured again in tests)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    # Library chatter stays at WARNING unless we debug.
    for noisy in ("sqlalchemy", "watchdog", "apscheduler", "urllib3", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # Never below WARNING: at INFO and DEBUG SQLAlchemy logs bound parameters and fetched rows,
    # which hold the file's data, protected columns included.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _rotating_file(log_file: Path) -> logging.Handler:
    """The LOG_FILE handler, or a ConfigError saying why it cannot be written.

    The folder is not created here: a mistyped LOG_FILE must not leave folders behind
    (``setup_directories.py`` creates it).
    """
    if not log_file.parent.is_dir():
        raise ConfigError(
            f"LOG_FILE {log_file}: folder {log_file.parent} does not exist "
            "(create it, or run setup_directories.py)"
        )
    try:
        return logging.handlers.RotatingFileHandler(
            log_file, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
    except OSError as exc:
        raise ConfigError(f"LOG_FILE {log_file} cannot be opened for writing: {exc.strerror}") from None
