"""Scenario 7: the health token, the loopback default, no password anywhere, no wider file permissions."""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
import sqlalchemy as sa

from tests.daemon.support import REPO
from tests.reliability.conftest import APP_PASSWORD
from tests.reliability.support import IS_ROOT, Campaign, Daemon, admin, free_port

pytestmark = [pytest.mark.reliability, pytest.mark.daemon]

SCENARIO = "7 security"
TOKEN = "tok-7f3a9c1e5b"
GUARDED = ("/readyz", "/metrics", "/status")


def request(d: Daemon, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        return conn.getresponse().status
    finally:
        conn.close()


class TestHealthToken:
    def test_every_endpoint_but_healthz_refuses_a_missing_or_wrong_token(self, campaign: Campaign, share):
        """With HEALTH_TOKEN set, /readyz, /metrics and /status refuse any request without the exact token."""
        d = campaign.daemon("token", health_token=TOKEN)
        d.wait_healthy()
        wrong_headers = [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Bearer x{TOKEN}"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": TOKEN},
            {"Authorization": f"Token {TOKEN}"},
            {"X-Health-Token": TOKEN},
        ]
        tried = 0
        for path in GUARDED:
            for headers in wrong_headers:
                assert request(d, "GET", path, headers) == 401, (path, headers)
                tried += 1
            for variant in (f"{path}/", f"{path}?token={TOKEN}", f"{path}?x=1#frag"):
                assert request(d, "GET", variant) == 401, variant
                tried += 1
            for variant in (f"/healthz/..{path}", f"/{path}", path.upper(), "/%73tatus", f"{path}%00"):
                assert request(d, "GET", variant) in (401, 404), variant
                tried += 1
            for method in ("POST", "PUT", "DELETE", "HEAD", "OPTIONS"):
                assert request(d, method, path) != 200, (method, path)
                tried += 1
            assert request(d, "GET", path, {"Authorization": f"Bearer {TOKEN}"}) == 200, path
        assert request(d, "GET", "/healthz") == 200
        share.hostile(tried)
        share.note(f"{tried} requests without the exact token: none answered 200")
        campaign.check([d])


class TestLoopback:
    def test_health_server_listens_on_loopback_only_by_default(self, campaign: Campaign):
        """Without HEALTH_HOST the health port is bound to 127.0.0.1 and nothing else."""
        d = campaign.daemon("loopback")
        d.wait_healthy()
        assert d.proc is not None
        listening = [
            c.laddr
            for c in psutil.Process(d.proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening, "the daemon listens on nothing"
        assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening
        assert {addr.port for addr in listening} == {d.port}


class TestNoPasswordAnywhere:
    def test_database_password_appears_in_no_log_sidecar_endpoint_or_message(
        self, tmp_path: Path, app_role: str, pg_url: str, share
    ):
        """A password in DATABASE_URL shows in no log line, sidecar, endpoint, tracking row or CLI message."""
        c = Campaign(tmp_path, app_role, share)
        try:
            d = c.daemon("secret", health_token=TOKEN, log_level="DEBUG", workers=2)
            d.wait_healthy()
            c.drop_tagged("ref", "append", "secret_ok", 0, 50)
            c.drop_bytes("ref", "append", "secret_bad.csv", b"a,b\n1,2\n3,4,5\n", expect="error")
            c.wait_settled()
            # Cut the daemon's sessions: the errors it logs while reconnecting must not name the URL.
            with_admin_terminate(pg_url)
            share.fault()
            c.drop_tagged("ref", "append", "secret_ok", 1, 50)
            c.wait_settled()
            c.check([d])
            texts = {"daemon log": d.log()}
            for path in GUARDED:
                texts[path] = d.get(path, token=TOKEN)[1].decode("utf-8", "replace")
            for kind, mode in (("ref", "append"),):
                for sidecar in (c.folder(kind, mode) / "error").glob("*.error.json"):
                    texts[sidecar.name] = sidecar.read_text(encoding="utf-8")
            with c.db.engine.connect() as conn:
                for table in ("File_Monitor_Tracking", "File_Monitor_Events"):
                    rows = conn.execute(sa.text(f'SELECT * FROM ref."{table}"')).all()
                    texts[table] = json.dumps([list(map(str, r)) for r in rows], ensure_ascii=False)
            # The command line, on a good URL and on an unreachable one.
            bad_url = app_role.replace(f":{c.db.engine.url.port}/", f":{free_port()}/")
            for args, url in (
                (["check-config"], app_role),
                (["status", "--json"], app_role),
                (["status"], bad_url),
                (["init-db"], bad_url),
                (["load", str(tmp_path / "missing.csv")], bad_url),
            ):
                texts[f"cli {' '.join(args)}"] = cli(args, url, tmp_path)
            d.terminate()
            texts["daemon log"] = d.log()
            forms = {APP_PASSWORD, quote(APP_PASSWORD, safe=""), quote(APP_PASSWORD)}
            assert any(form in app_role for form in forms), "the search would not even find it in the URL"
            leaks = [name for name, text in texts.items() if any(form in text for form in forms)]
            assert not leaks, f"the database password appears in: {leaks}"
            assert "********" in texts["cli check-config"] or "***" in texts["cli check-config"]
            share.note(
                f"password searched in {len(texts)} outputs (logs at DEBUG, sidecars, endpoints, rows, CLI)"
            )
            share.survived()
        finally:
            c.close()


def with_admin_terminate(pg_url: str) -> None:
    with admin(pg_url, "postgres") as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'refdata-monitor' AND datname = %s",
            (sa.engine.make_url(pg_url).database,),
        )


def cli(args: list[str], url: str, root: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    env.update(
        {
            "DATABASE_URL": url,
            "DROPOFF_BASE_PATH": str(root / "dropoff"),
            "DATA_DIR": str(root / "data"),
            "DB_CONNECT_TIMEOUT_SECONDS": "2",
            "HEALTH_PORT": "1",
            "LOG_LEVEL": "DEBUG",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "backend", "--env-file", "/nonexistent/.env", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout + result.stderr


class TestFilePermissions:
    def test_processed_and_error_files_are_never_readable_by_more_users(self, campaign: Campaign, share):
        """Loaded and refused files keep their mode and sidecars are never wider, also across volumes."""
        mounted = None
        if IS_ROOT:
            # processed/ on another volume: the move becomes a copy, which must keep the mode too.
            target = campaign.folder("noref", "fullload") / "processed"
            target.mkdir(parents=True)
            command = ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0750", "tmpfs", str(target)]
            if subprocess.run(command, capture_output=True, check=False).returncode == 0:
                mounted = target
        try:
            d = campaign.daemon("modes", workers=2)
            d.wait_healthy()
            cases = []
            for n, mode in enumerate((0o600, 0o640, 0o604)):
                for kind, load, body, expect in (
                    ("ref", "append", b"a,b\n1,2\n", "loaded"),
                    ("noref", "fullload", b"a,b\n1,2\n", "loaded"),
                    ("ref", "fullload", b"a,b\n1,2,3\n", "error"),
                ):
                    rows = [("1", "2")] if expect == "loaded" else None
                    name = f"mode_{n}_{kind}_{load}.csv"
                    drop = campaign.drop_bytes(
                        kind, load, name, body, expect=expect, rows=rows, file_mode=mode
                    )
                    cases.append((drop, mode))
            campaign.wait_settled()
            outcome = campaign.check([d])
            for drop, mode in cases:
                final = outcome.terminal[campaign.drops.index(drop)]
                moved = Path(final["moved_to"])
                assert stat.S_IMODE(moved.stat().st_mode) == mode, (moved, oct(moved.stat().st_mode))
                if final["status"] == "error":
                    side = moved.with_name(moved.name + ".error.json")
                    assert stat.S_IMODE(side.stat().st_mode) & ~mode == 0, (side, oct(side.stat().st_mode))
            where = "a same-volume rename" + (" and a cross-volume copy" if mounted else "")
            share.note(
                f"{len(cases)} files with modes 600/640/604 kept them through {where}; sidecars no wider"
            )
        finally:
            campaign.close()
            if mounted is not None:
                subprocess.run(["umount", "-l", str(mounted)], check=False)
