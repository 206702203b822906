"""Start-up and shutdown as the service manager sees them: one clear line, the documented exit codes.

Each test runs the real daemon (`python -m backend run`) as a subprocess.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.daemon.support import REPO, Daemon, drop, free_port, wait_for

pytestmark = pytest.mark.daemon
SETPRIV = shutil.which("setpriv")


def run_daemon(tmp_path: Path, timeout: float = 60, prefix: tuple[str, ...] = (), **env: str):
    """Run the daemon to its end; returns the completed process (stdout and stderr together)."""
    d = Daemon(tmp_path, f"sqlite:///{tmp_path / 'data' / 'refdata.db'}", env)
    (tmp_path / "dropoff").mkdir(exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    command = [
        *prefix,
        sys.executable,
        "-m",
        "backend",
        "--env-file",
        "/nonexistent/.env",
        "run",
        "--until-idle",
    ]
    return subprocess.run(
        command,
        cwd=REPO,
        env=d.environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line that reports the failure; no traceback, nothing else above INFO."""
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    failures = [line for line in output.splitlines() if "[info" not in line and '"level": "info"' not in line]
    assert len(failures) == 1, output
    return failures[0]


class TestOneLineFailures:
    @pytest.mark.parametrize("fmt", ["console", "json"])
    def test_a_busy_health_port_is_one_line(self, tmp_path, fmt):
        """HEALTH_PORT in use: exit 2 with one line naming the port (a JSON line with LOG_FORMAT=json)."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run_daemon(tmp_path, HEALTH_PORT=str(port), LOG_FORMAT=fmt)
        assert result.returncode == 2
        line = one_line(result)
        assert f"127.0.0.1:{port} is already in use" in line and "HEALTH_PORT" in line
        if fmt == "json":
            record = json.loads(line)
            assert record["event"] == "start-up failed" and record["level"] == "error"

    @pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is needed to drop root's file powers")
    def test_an_unwritable_sqlite_folder_is_one_line(self, tmp_path):
        """A data folder the daemon cannot write: exit 2 with one line naming it, no traceback."""
        (tmp_path / "data").mkdir()
        (tmp_path / "data").chmod(0o500)
        try:
            prefix = (SETPRIV, "--bounding-set=-dac_override,-dac_read_search", "--")
            result = run_daemon(tmp_path, prefix=prefix, HEALTH_ENABLED="false")
        finally:
            (tmp_path / "data").chmod(0o700)
        assert result.returncode == 2
        line = one_line(result)
        assert (
            "SQLite database folder" in line and "is not writable" in line and str(tmp_path / "data") in line
        )

    @pytest.mark.parametrize("where", ["missing folder", "a directory"])
    def test_an_unusable_log_file_is_one_line(self, tmp_path, where):
        """LOG_FILE in a missing folder, or naming a directory: exit 2 with one line naming LOG_FILE."""
        target = tmp_path / "nowhere" / "monitor.log" if where == "missing folder" else tmp_path
        result = run_daemon(tmp_path, LOG_FILE=str(target), HEALTH_ENABLED="false")
        assert result.returncode == 2
        assert "LOG_FILE" in one_line(result)
        assert not (tmp_path / "nowhere").exists()

    def test_a_crash_is_a_json_log_line(self, tmp_path):
        """An unexpected exception in the loop ends the daemon with a JSON 'crashed' line and traceback."""
        result = run_daemon(tmp_path, LOG_FORMAT="json", HEALTH_ENABLED="false", REFDATA_FAULTS="loop.tick@1")
        assert result.returncode == 1
        lines = (result.stdout + result.stderr).strip().splitlines()
        records = [json.loads(line) for line in lines]  # every line, the crash included, is JSON
        crash = records[-1]
        assert crash["event"] == "crashed" and crash["level"] == "critical"
        assert "InjectedFault" in json.dumps(crash["exception"])


class TestSignalsWhileWaitingForTheDatabase:
    @pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
    def test_a_signal_while_the_database_is_down_stops_at_once(self, tmp_path, pg_url, sig, code):
        """Ctrl-C (130) or SIGTERM (0) while start-up waits for an unreachable database ends within 2 s."""
        url = make_url(pg_url).set(port=free_port()).render_as_string(hide_password=False)
        d = Daemon(tmp_path, url, {"HEALTH_ENABLED": "false", "DB_CONNECT_TIMEOUT_SECONDS": "2"}).start()
        try:
            wait_for(
                lambda: "database unavailable at start-up" in d.log(), 30, what="the first failed attempt"
            )
            assert d.proc is not None
            time.sleep(0.3)
            started = time.monotonic()
            d.proc.send_signal(sig)
            assert d.proc.wait(10) == code
            assert time.monotonic() - started < 2.0
        finally:
            if d.alive():
                d.kill9()
        assert "Traceback" not in d.log()


class TestWhatTheLogSays:
    def test_token_presence_and_every_file_line_carries_path_table_id_and_load_type(self, tmp_path):
        """Start-up says token=set/unset; 'loaded' and 'file rejected' name path, table, id and load type."""
        d = Daemon(
            tmp_path, f"sqlite:///{tmp_path / 'data' / 'refdata.db'}", {"HEALTH_TOKEN": "tok-1"}
        ).start()
        try:
            d.wait_healthy()
            drop(d.folder() / "countries.csv", "code,name\nDE,Germany\n")
            drop(d.folder() / "broken.csv", "a,b\n1,2\nx\n")
            wait_for(lambda: '"file rejected"' in d.log() and '"loaded"' in d.log(), 60, what="both outcomes")
        finally:
            assert d.terminate() == 0
        records = [json.loads(line) for line in d.log().splitlines() if line.startswith("{")]
        [listening] = [r for r in records if r["event"] == "health endpoint listening"]
        assert listening["token"] == "set"
        [loaded] = [r for r in records if r["event"] == "loaded"]
        [rejected] = [r for r in records if r["event"] == "file rejected"]
        for record in (loaded, rejected):
            assert record["path"].endswith(record["file"])
            assert record["load_type"] == "fullload" and isinstance(record["tracking_id"], int)
        assert loaded["table"] == "countries" and rejected["table"] == "broken"
        assert loaded["size"] == len("code,name\nDE,Germany\n") and "backup_version" in loaded
        unset = Daemon(tmp_path / "second", f"sqlite:///{tmp_path / 'second' / 'data' / 'r.db'}").start()
        try:
            unset.wait_healthy()
        finally:
            unset.terminate()
        assert '"token": "unset"' in unset.log()
