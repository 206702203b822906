"""A tiny HTTP endpoint for probes and scrapers, on a daemon thread.

    GET /          the operator's status page (HTML, refreshes itself; see `backend.daemon.page`)
    GET /healthz   liveness: is the main loop turning? (no dependency checks, no token)
    GET /readyz    readiness: database, folders, watcher, backlog (503 names the failing check)
    GET /metrics   Prometheus text format 0.0.4
    GET /status    what the daemon is doing, as JSON

Bodies of /healthz and /readyz follow draft-inadarei-api-health-check::

    {"status": "fail", "checks": {"database": {"status": "fail", "output": "connection refused"}}}

When a token is configured every path but /healthz needs ``Authorization: Bearer <token>``.
Bind to 127.0.0.1 (the default) unless a scraper on another host needs it.
"""

from __future__ import annotations

import hmac
import json
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

log = structlog.get_logger(__name__)

Probe = Callable[[], tuple[bool, dict[str, Any]]]
HEALTH_CONTENT_TYPE = "application/health+json"
METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"
# The page carries its own styles and an inline SVG and nothing else: no script, no request to
# another host (plants often have no internet, and the page must not leak anything to one).
PAGE_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
GUARDED_PATHS = ("/", "/readyz", "/metrics", "/status")


def summarize_checks(checks: Mapping[str, tuple[bool, str | None]]) -> tuple[bool, dict[str, Any]]:
    """Turn {"database": (False, "connection refused"), ...} into a probe result.

    Returns:
        (all passed, {"checks": {"database": {"status": "fail", "output": "..."}, ...}})
    """
    body: dict[str, dict[str, str]] = {}
    for name, (ok, output) in checks.items():
        item = {"status": "pass" if ok else "fail"}
        if output:
            item["output"] = output
        body[name] = item
    return all(ok for ok, _ in checks.values()), {"checks": body}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 makes a burst of clients (a scanner, many scrapers)
    # wait for SYN retries of 1, 3, 7 ... seconds before the server even sees them.
    request_queue_size = 128
    token: bytes | None
    liveness: Probe
    readiness: Probe
    status: Callable[[], dict[str, Any]]
    metrics: Callable[[], bytes]
    page: Callable[[], str] | None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up is not an error; anything else goes to our log, not raw stderr.

        socketserver's default prints a traceback straight to stderr, bypassing the log format:
        300 idle connections closed by a scanner gave dozens of raw BrokenPipeError tracebacks.
        """
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("health client went away", error=type(exc).__name__)
            return
        log.error("health request failed", exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # A client that connects and sends nothing must not keep stop() waiting for long.
    timeout = 10
    server_version = "refdata-monitor"
    sys_version = ""

    def do_GET(self) -> None:  # name fixed by BaseHTTPRequestHandler
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/healthz":
            self._probe(self.server.liveness)
        elif path not in GUARDED_PATHS or (path == "/" and self.server.page is None):
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        elif not self._authorized():
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        elif path == "/readyz":
            self._probe(self.server.readiness)
        elif path == "/metrics":
            self._metrics()
        elif path == "/":
            self._page()
        else:
            self._status()

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token)

    def _probe(self, probe: Probe) -> None:
        try:
            ok, details = probe()
        except Exception as exc:  # a broken check is a failed check, not a crash
            log.exception("health check raised", path=self.path)
            ok, details = False, {"output": type(exc).__name__}
        body = {**details, "status": "pass" if ok else "fail"}
        status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
        self._json(status, body, content_type=HEALTH_CONTENT_TYPE)

    def _metrics(self) -> None:
        try:
            payload = self.server.metrics()
        except Exception:  # report 500, keep serving
            log.exception("rendering metrics failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            return
        self._send(HTTPStatus.OK, payload, METRICS_CONTENT_TYPE)

    def _page(self) -> None:
        render = self.server.page
        if render is None:  # do_GET answers 404 first; kept for the type checker
            return
        try:
            html = render()
        except Exception:  # report 500, keep serving
            log.exception("rendering the status page failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            return
        self._send(
            HTTPStatus.OK,
            html.encode("utf-8"),
            PAGE_CONTENT_TYPE,
            {"Content-Security-Policy": PAGE_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"},
        )

    def _status(self) -> None:
        try:
            body = self.server.status()
        except Exception:  # report 500, keep serving
            log.exception("building the status failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            return
        self._json(HTTPStatus.OK, body)

    def _json(
        self,
        status: HTTPStatus,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        payload = json.dumps(body, default=str, ensure_ascii=False).encode("utf-8")
        self._send(status, payload, content_type + "; charset=utf-8", headers)

    def _send(
        self,
        status: HTTPStatus,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        """Quiet: probes every few seconds would drown the log."""


class HealthServer:
    """A running health server; `stop()` shuts it down and joins its threads."""

    def __init__(self, httpd: _Server, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        """Stop serving, close the socket, wait for requests in flight. Idempotent."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()


def start_health_server(
    host: str,
    port: int,
    *,
    token: str | None,
    liveness: Probe,
    readiness: Probe,
    status: Callable[[], dict[str, Any]],
    metrics: Callable[[], bytes],
    page: Callable[[], str] | None = None,
    poll_interval_seconds: float = 0.5,
) -> HealthServer:
    """Serve the health endpoints on `host`:`port` from a daemon thread.

    Args:
        host: address to bind (``settings.health_host``; an IPv6 address works too).
        port: port to bind; 0 picks a free one (read it back from `.port`).
        token: bearer token for everything but /healthz; None or "" disables the check.
        liveness: returns (ok, extra body fields) for /healthz; must be cheap and must not
            touch the database.
        readiness: the same for /readyz; `summarize_checks` builds the usual shape.
        status: returns the /status JSON object.
        metrics: returns the Prometheus exposition (`Metrics.render`).
        page: returns the HTML of the status page at ``/`` (None: no page, ``/`` is 404).
        poll_interval_seconds: how often the serving loop checks for `stop()`; also about
            how long `stop()` takes.

    Raises:
        OSError: the address cannot be bound (port in use, unknown host).
    """
    server_class = _Server6 if ":" in host else _Server
    httpd = server_class((host, port), _Handler)
    httpd.token = token.encode("utf-8") if token else None
    httpd.liveness = liveness
    httpd.readiness = readiness
    httpd.status = status
    httpd.metrics = metrics
    httpd.page = page
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": poll_interval_seconds},
        name="health-server",
        daemon=True,
    )
    thread.start()
    log.info(
        "health endpoint listening",
        host=host,
        port=httpd.server_address[1],
        # "set"/"unset": the log filter masks any other value of a key named token.
        token="set" if token else "unset",
    )
    return HealthServer(httpd, thread)
