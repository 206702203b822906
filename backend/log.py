"""Logging set-up, called once from the CLI: structlog for our events, stdlib routed through it.

Console output goes to stderr (stdout belongs to command output such as ``export``); with
LOG_FILE set, JSON lines also go to a rotating file. SQLAlchemy, watchdog and APScheduler
records pass through the same processors, so every line has one shape.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

import structlog

from backend.masking import scrub

_SECRET_KEYS = ("password", "pwd", "token", "secret")


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "********"
    return event


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
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
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
        log_file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
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
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    # Library chatter stays at WARNING unless we debug.
    for noisy in ("sqlalchemy", "watchdog", "apscheduler", "urllib3", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # Never below WARNING: at INFO and DEBUG SQLAlchemy logs bound parameters and fetched rows,
    # which hold the file's data, protected columns included.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
