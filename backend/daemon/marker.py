"""One folder, one database: the marker a daemon leaves in its dropoff, and the check against it.

Two daemons with different databases on one dropoff would each load every file (each claims it
in its own tracking table) and the only sign would be a log line per file (issue 14, item 8).
So the first daemon to start on a dropoff writes ``<dropoff>/.refdata-monitor.json``: which
database and data schema the folder belongs to (the URL masked, never a password), and which
daemon wrote it (host, pid, start time). A daemon whose database differs refuses to start, with a
message naming both; one with the same database rewrites the marker with its own identity.

There is deliberately no read-only mode: a daemon that may not load has nothing to do on the
folder, and `status`, `history` and `export` already read any database without a daemon. When a
folder really moves to another database, delete the marker (the message says so).

"Same database" compares the database's address, not the URL's spelling: the backend (driver
left out), host (lower-cased) and port (the default filled in), database name and data schema;
for SQLite the resolved path of the database file. The user name does not count (two logins on
one database are one database).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import make_url

from backend.config import Settings
from backend.daemon import moves
from backend.errors import ConfigError

log = structlog.get_logger(__name__)

MARKER_NAME = ".refdata-monitor.json"
_DEFAULT_PORTS = {"postgresql": 5432, "mssql": 1433}


def database_key(settings: Settings) -> str:
    """Where the data lives, as a string that does not depend on how the URL is spelled."""
    url = make_url(settings.url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ":memory:"
        where = database if database == ":memory:" else os.path.realpath(database)
        return f"sqlite:{where}#{settings.data_schema}"
    if url.host is None:
        # No host in the URL (an odbc_connect string, a socket): the masked URL without its user.
        return f"{backend}:{url.set(username=None, password=None).render_as_string()}#{settings.data_schema}"
    port = url.port or _DEFAULT_PORTS.get(backend, 0)
    return f"{backend}://{url.host.lower()}:{port}/{url.database or ''}#{settings.data_schema}"


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the marker said when last read, and the file it was read from."""

    key: str | None
    body: dict[str, Any]
    stamp: tuple[int, int]


class FolderMarker:
    """The dropoff's marker as this daemon wrote it; `check` notices another database taking over."""

    def __init__(self, settings: Settings, owner: str) -> None:
        self.path = Path(settings.dropoff_base_path) / MARKER_NAME
        self.key = database_key(settings)
        self._settings = settings
        self._owner = owner
        self._seen: _Seen | None = None
        self._complained = False

    def claim(self) -> None:
        """Write the marker, or refuse (ConfigError) when it names another database."""
        seen = self._read()
        if seen is not None and seen.key != self.key:
            raise ConfigError(self._refusal(seen.body))
        self._write(replace=seen is not None)
        log.info(
            "dropoff marked as this database's", marker=str(self.path), database=self._settings.masked_url
        )

    def check(self) -> str | None:
        """Why this daemon must not dispatch now (another database's marker), or None.

        Called every tick: a `stat`, and a read only when the marker changed. A missing marker
        (deleted while we run) is written again.
        """
        try:
            info = self.path.stat()
            if self._seen is None or self._seen.stamp != (info.st_mtime_ns, info.st_ino):
                self._seen = self._read()
        except FileNotFoundError:
            try:
                self._write(replace=False)
                log.warning("dropoff marker was missing; written again", marker=str(self.path))
            except ConfigError:
                self._seen = self._read_quietly()  # another database's daemon was quicker
            except OSError:
                return None
        except (OSError, ConfigError):
            return None  # an unreadable dropoff is the scan's to report
        if self._seen is None or self._seen.key == self.key:
            self._complained = False
            return None
        reason = self._refusal(self._seen.body)
        if not self._complained:
            self._complained = True
            log.error("not loading: " + reason)
        return reason

    def _read_quietly(self) -> _Seen | None:
        try:
            return self._read()
        except ConfigError:
            return None

    def _refusal(self, body: dict[str, Any]) -> str:
        other = body.get("database") or "an unknown database"
        writer = f"{body.get('daemon', '?')} on {body.get('host', '?')} (pid {body.get('pid', '?')})"
        return (
            f"dropoff {self._settings.dropoff_base_path} belongs to another database: its marker "
            f"{self.path} was written by {writer} at {body.get('started_at', '?')} for {other} "
            f"(schema {body.get('schema', '?')}), but this daemon uses {self._settings.masked_url} "
            f"(schema {self._settings.data_schema}). Two databases on one folder would each load "
            "every file. Point DATABASE_URL at that database or DROPOFF_BASE_PATH at another "
            "folder; if this folder really moved to this database, delete the marker"
        )

    def _read(self) -> _Seen | None:
        try:
            with self.path.open("rb") as f:
                info = os.fstat(f.fileno())
                raw = f.read(64 * 1024)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the dropoff marker {self.path}: {exc.strerror}") from None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("database_key"), str):
            # Written atomically by us, so never half-written: someone else's file, or damage.
            body = {"database": f"(unreadable marker {self.path.name})"}
            return _Seen(key="", body=body, stamp=(info.st_mtime_ns, info.st_ino))
        return _Seen(key=body["database_key"], body=body, stamp=(info.st_mtime_ns, info.st_ino))

    def _write(self, *, replace: bool) -> None:
        body = {
            "database": self._settings.masked_url,
            "database_key": self.key,
            "schema": self._settings.data_schema,
            "daemon": self._owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        fd, tmp_name = tempfile.mkstemp(prefix=MARKER_NAME + ".", suffix=".tmp", dir=self.path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(body, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            if replace:
                os.replace(tmp, self.path)
            else:
                # Two daemons starting at once: exactly one creates the marker, the other then reads it.
                try:
                    moves.rename_noreplace(tmp, self.path)
                except FileExistsError:
                    seen = self._read()
                    if seen is not None and seen.key != self.key:
                        raise ConfigError(self._refusal(seen.body)) from None
                    os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        moves.fsync_dir(self.path.parent)
        with contextlib.suppress(OSError):
            info = self.path.stat()
            self._seen = _Seen(key=self.key, body=body, stamp=(info.st_mtime_ns, info.st_ino))
