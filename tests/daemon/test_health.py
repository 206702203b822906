"""Health endpoint: a real server on a free port, real HTTP requests."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from backend.daemon.health import HealthServer, start_health_server, summarize_checks

TOKEN = "s3cr3t-token-value"


class Probes:
    """Switchable answers for the four callables the server is given."""

    def __init__(self) -> None:
        self.live: tuple[bool, dict[str, Any]] = (True, {"heartbeat_age_seconds": 1.5})
        self.ready: tuple[bool, dict[str, Any]] = summarize_checks({"database": (True, None)})
        self.status_body: dict[str, Any] = {"waiting_for_stability": [], "recent": []}
        self.metrics_body = b"# HELP refdata_queue_depth x\nrefdata_queue_depth 0.0\n"
        self.page_html = "<!doctype html><title>status</title><p>ok</p>"
        self.fail_with: Exception | None = None

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        if self.fail_with:
            raise self.fail_with
        return self.live

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.fail_with:
            raise self.fail_with
        return self.ready

    def status(self) -> dict[str, Any]:
        if self.fail_with:
            raise self.fail_with
        return self.status_body

    def metrics(self) -> bytes:
        if self.fail_with:
            raise self.fail_with
        return self.metrics_body

    def page(self) -> str:
        if self.fail_with:
            raise self.fail_with
        return self.page_html


@pytest.fixture
def probes() -> Probes:
    return Probes()


def serve(probes: Probes, token: str | None) -> HealthServer:
    return start_health_server(
        "127.0.0.1",
        0,
        token=token,
        liveness=probes.liveness,
        readiness=probes.readiness,
        status=probes.status,
        metrics=probes.metrics,
        page=probes.page,
        poll_interval_seconds=0.01,
    )


@pytest.fixture
def server(probes: Probes) -> Iterator[HealthServer]:
    srv = serve(probes, None)
    yield srv
    srv.stop()


@pytest.fixture
def secured(probes: Probes) -> Iterator[HealthServer]:
    srv = serve(probes, TOKEN)
    yield srv
    srv.stop()


def get(
    srv: HealthServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class TestProbes:
    def test_healthz_passes(self, server: HealthServer) -> None:
        """A live loop answers 200 with status pass and the extra fields."""
        status, headers, body = get(server, "/healthz")
        assert status == 200
        assert headers["content-type"].startswith("application/health+json")
        assert json.loads(body) == {"status": "pass", "heartbeat_age_seconds": 1.5}

    def test_healthz_fails_with_503(self, server: HealthServer, probes: Probes) -> None:
        """A stale loop answers 503 with status fail."""
        probes.live = (False, {"heartbeat_age_seconds": 600})
        status, _, body = get(server, "/healthz")
        assert status == 503
        assert json.loads(body)["status"] == "fail"

    def test_readyz_names_the_failing_check(self, server: HealthServer, probes: Probes) -> None:
        """A failing dependency gives 503 and an inadarei-style body naming it."""
        probes.ready = summarize_checks({"database": (False, "connection refused"), "dropoff": (True, None)})
        status, _, body = get(server, "/readyz")
        assert status == 503
        assert json.loads(body) == {
            "status": "fail",
            "checks": {
                "database": {"status": "fail", "output": "connection refused"},
                "dropoff": {"status": "pass"},
            },
        }

    def test_readyz_passes(self, server: HealthServer) -> None:
        """All checks passing gives 200."""
        status, _, body = get(server, "/readyz")
        assert status == 200
        assert json.loads(body) == {"status": "pass", "checks": {"database": {"status": "pass"}}}

    def test_query_string_is_ignored(self, server: HealthServer) -> None:
        """/healthz?verbose is still /healthz."""
        assert get(server, "/healthz?verbose")[0] == 200

    def test_raising_probe_is_a_failure_without_its_message(
        self, server: HealthServer, probes: Probes
    ) -> None:
        """An exception in a check gives 503 naming only its type, never its text (it may hold secrets)."""
        probes.fail_with = RuntimeError("postgresql://admin:hunter2@db/ref")
        status, _, body = get(server, "/readyz")
        assert status == 503
        assert json.loads(body) == {"status": "fail", "output": "RuntimeError"}
        assert b"hunter2" not in body


class TestOtherEndpoints:
    def test_metrics_are_prometheus_text(self, server: HealthServer, probes: Probes) -> None:
        """/metrics returns the exposition with the 0.0.4 text content type."""
        status, headers, body = get(server, "/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert body == probes.metrics_body

    def test_status_is_json(self, server: HealthServer, probes: Probes) -> None:
        """/status returns the status object as JSON."""
        probes.status_body = {"waiting_for_stability": [{"file": "a.csv", "checks_done": 2}], "recent": []}
        status, headers, body = get(server, "/status")
        assert status == 200
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body) == probes.status_body

    def test_failing_status_is_500(self, server: HealthServer, probes: Probes) -> None:
        """A status or metrics callable that raises answers 500 and the server keeps serving."""
        probes.fail_with = ValueError("boom")
        assert get(server, "/status")[0] == 500
        assert get(server, "/metrics")[0] == 500
        probes.fail_with = None
        assert get(server, "/status")[0] == 200

    @pytest.mark.parametrize(
        "path", ["/index.html", "/health", "/readyz/extra", "/../etc/passwd", "/metrics.txt"]
    )
    def test_unknown_path_is_404(self, server: HealthServer, path: str) -> None:
        """Anything but the five endpoints is 404."""
        assert get(server, path)[0] == 404

    def test_page_is_html_that_may_load_nothing_from_elsewhere(self, server: HealthServer) -> None:
        """/ serves the status page as HTML with a policy forbidding scripts and other hosts."""
        status, headers, body = get(server, "/")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "script-src" not in headers["content-security-policy"]
        assert body.startswith(b"<!doctype html>")

    def test_without_a_page_the_root_is_404(self, probes: Probes) -> None:
        """A server started without a page callable answers 404 at /."""
        srv = start_health_server(
            "127.0.0.1",
            0,
            token=None,
            liveness=probes.liveness,
            readiness=probes.readiness,
            status=probes.status,
            metrics=probes.metrics,
            poll_interval_seconds=0.01,
        )
        try:
            assert get(srv, "/")[0] == 404
        finally:
            srv.stop()

    def test_failing_page_is_500(self, server: HealthServer, probes: Probes) -> None:
        """A page that cannot be rendered answers 500 without its message, and the server keeps serving."""
        probes.fail_with = ValueError("postgresql://admin:hunter2@db/ref")
        status, _, body = get(server, "/")
        assert status == 500 and b"hunter2" not in body
        probes.fail_with = None
        assert get(server, "/")[0] == 200

    def test_responses_are_not_cached(self, server: HealthServer) -> None:
        """Probes must never see a cached answer."""
        assert get(server, "/healthz")[1]["cache-control"] == "no-store"


class TestToken:
    @pytest.mark.parametrize("path", ["/", "/readyz", "/metrics", "/status"])
    def test_missing_token_is_401(self, secured: HealthServer, path: str) -> None:
        """Without Authorization every protected path answers 401 with a Bearer challenge."""
        status, headers, body = get(secured, path)
        assert status == 401
        assert headers["www-authenticate"] == "Bearer"
        assert TOKEN.encode() not in body

    @pytest.mark.parametrize(
        "value", [f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"]
    )
    def test_wrong_token_is_401(self, secured: HealthServer, value: str) -> None:
        """A wrong, truncated or differently-schemed credential is refused."""
        status, _, body = get(secured, "/status", {"Authorization": value})
        assert status == 401
        assert TOKEN.encode() not in body

    @pytest.mark.parametrize("path", ["/", "/readyz", "/metrics", "/status"])
    def test_right_token_is_accepted(self, secured: HealthServer, path: str) -> None:
        """The configured bearer token opens every protected path."""
        assert get(secured, path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200

    def test_scheme_is_case_insensitive(self, secured: HealthServer) -> None:
        """ "bearer" in lower case is the same scheme."""
        assert get(secured, "/status", {"Authorization": f"bearer {TOKEN}"})[0] == 200

    def test_healthz_needs_no_token(self, secured: HealthServer) -> None:
        """Liveness stays open so that a supervisor without the token can probe it."""
        assert get(secured, "/healthz")[0] == 200

    def test_empty_token_disables_the_check(self, probes: Probes) -> None:
        """An empty HEALTH_TOKEN means no token, not a token that matches an empty header."""
        srv = serve(probes, "")
        try:
            assert get(srv, "/status")[0] == 200
        finally:
            srv.stop()


class TestLifecycle:
    def test_port_zero_binds_a_free_port_on_loopback(self, server: HealthServer) -> None:
        """Port 0 picks a free port, readable from .port, on 127.0.0.1."""
        assert server.port > 0
        assert server.host == "127.0.0.1"

    def test_stop_closes_the_port(self, probes: Probes) -> None:
        """After stop() nothing listens on the port any more, and stop() can be called again."""
        srv = serve(probes, None)
        port = srv.port
        assert get(srv, "/healthz")[0] == 200
        srv.stop()
        srv.stop()
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass

    def test_busy_port_raises(self, server: HealthServer, probes: Probes) -> None:
        """Binding a port already in use fails loudly instead of serving nothing."""
        with pytest.raises(OSError):
            start_health_server(
                "127.0.0.1",
                server.port,
                token=None,
                liveness=probes.liveness,
                readiness=probes.readiness,
                status=probes.status,
                metrics=probes.metrics,
            )


class TestIdleClients:
    def test_hundreds_of_idle_and_vanishing_clients_leave_no_traceback(
        self, server: HealthServer, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """300 connections that send nothing, half a request or a request, then reset, print no traceback."""
        socks = []
        try:
            for i in range(300):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                socks.append(sock)
                if i % 3 == 0:
                    sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
                elif i % 3 == 1:
                    sock.sendall(b"GET /metr")
            time.sleep(0.5)
        finally:
            for sock in socks:
                # SO_LINGER 0: close with a reset, as a scanner or a killed client does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        time.sleep(1.0)
        assert get(server, "/healthz")[0] == 200
        err = capfd.readouterr().err
        assert "Traceback" not in err and "BrokenPipeError" not in err and "ConnectionResetError" not in err


class TestSummarizeChecks:
    def test_all_pass(self) -> None:
        """Every check passing is a pass; outputs are kept only when given."""
        ok, body = summarize_checks({"database": (True, None), "disk": (True, "912 MiB free")})
        assert ok is True
        assert body == {
            "checks": {"database": {"status": "pass"}, "disk": {"status": "pass", "output": "912 MiB free"}}
        }

    def test_one_failure_fails_all(self) -> None:
        """A single failing check makes the whole result fail."""
        ok, body = summarize_checks({"database": (True, None), "watcher": (False, "observer died")})
        assert ok is False
        assert body["checks"]["watcher"] == {"status": "fail", "output": "observer died"}
