"""Deployment pieces: the systemd unit, sd_notify, the Windows service shim and setup_directories.py."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.daemon import notify
from backend.daemon.notify import Notifier, watchdog_interval_seconds

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "systemd" / "refdata-monitor.service"
WINDOWS_SHIM = ROOT / "deploy" / "windows" / "service.py"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


def unit_keys(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values, as systemd reads a unit (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"key outside a section: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with only its interpreter swapped for this venv's, so systemd can check ExecStart."""
    text = UNIT.read_text(encoding="utf-8") if text is None else text
    text = text.replace("ExecStart=/opt/refdata-monitor/.venv/bin/python", f"ExecStart={sys.executable}")
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    return copy


def verify_complaints(unit: Path) -> tuple[int, list[str]]:
    """Run systemd-analyze verify; return its exit code and the lines that mention the unit."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in lines if unit.name in line]


class TestSystemdUnit:
    def test_unit_keeps_the_required_settings(self) -> None:
        """Type=notify with a watchdog, restart on failure, env file, and the core hardening stay in place."""
        service = unit_keys(UNIT.read_text(encoding="utf-8"))["Service"]
        assert service["Type"] == ["notify"]
        assert service["NotifyAccess"] == ["main"]
        assert service["ExecStart"] == ["/opt/refdata-monitor/.venv/bin/python -m backend run"]
        assert service["WorkingDirectory"] == ["/opt/refdata-monitor"]
        assert service["EnvironmentFile"] == ["-/etc/refdata-monitor/refdata-monitor.env"]
        assert service["User"] == ["refdata"] and service["Group"] == ["refdata"]
        assert service["Restart"] == ["on-failure"]
        assert service["RestartSec"] == ["5"]
        assert service["WatchdogSec"] == ["60"]
        assert service["TimeoutStopSec"] == ["60"]
        assert service["KillSignal"] == ["SIGTERM"]
        assert service["NoNewPrivileges"] == ["yes"]
        assert service["ProtectSystem"] == ["strict"]
        assert service["UMask"] == ["0027"]
        for key in (
            "PrivateTmp",
            "ProtectHome",
            "ProtectKernelTunables",
            "ProtectControlGroups",
            "RestrictSUIDSGID",
            "LockPersonality",
        ):
            assert service[key] == ["yes"], key
        writable = " ".join(service["ReadWritePaths"]).split()
        assert writable == [
            "/opt/refdata-monitor/dropoff",
            "/opt/refdata-monitor/data",
        ]
        # The LOG_FILE folder, created by systemd for the service's user.
        assert service["LogsDirectory"] == ["refdata-monitor"]

    def test_stop_timeout_exceeds_the_daemons_grace_period(self) -> None:
        """systemd must not SIGKILL before the daemon's own shutdown grace (default 30 s) is over."""
        from backend.config import Settings

        service = unit_keys(UNIT.read_text(encoding="utf-8"))["Service"]
        grace = Settings.model_fields["shutdown_timeout_seconds"].default
        assert int(service["TimeoutStopSec"][0]) > grace

    @needs_systemd_analyze
    def test_systemd_accepts_the_unit(self, tmp_path: Path) -> None:
        """systemd-analyze verify finds no unknown key, bad value or missing command in the unit."""
        code, complaints = verify_complaints(unit_copy(tmp_path))
        assert code == 0
        assert complaints == []

    @needs_systemd_analyze
    def test_verification_would_catch_a_typo(self, tmp_path: Path) -> None:
        """The check above can fail: a misspelt key and a bad value are reported."""
        text = UNIT.read_text(encoding="utf-8")
        text = text.replace("WatchdogSec=60", "WatchdogSecs=60").replace("RestartSec=5", "RestartSec=soon")
        _code, complaints = verify_complaints(unit_copy(tmp_path, text))
        assert any("WatchdogSecs" in line for line in complaints), complaints
        assert any("soon" in line for line in complaints), complaints

    @needs_systemd_analyze
    def test_hardening_exposure_is_low(self, tmp_path: Path) -> None:
        """systemd's own exposure score for the unit stays in its "OK" band (below 3.0 of 10)."""
        assert SYSTEMD_ANALYZE is not None
        result = subprocess.run(
            [SYSTEMD_ANALYZE, "security", "--offline=yes", str(unit_copy(tmp_path))],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        if match is None and "offline" in result.stderr:
            pytest.skip("this systemd-analyze has no --offline security check")
        assert match is not None, result.stdout + result.stderr
        assert float(match.group(1)) < 3.0


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, socket.socket]]:
    """A real datagram socket standing in for systemd (short path: AF_UNIX allows ~107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
        path = os.path.join(folder, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(5)
            yield path, sock


class TestSdNotify:
    def test_ready_reaches_the_socket(self, notify_socket: tuple[str, socket.socket]) -> None:
        """READY=1 (with a one-line STATUS) arrives as one datagram."""
        path, sock = notify_socket
        assert Notifier(path).ready("watching\n/opt/dropoff") is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=watching /opt/dropoff"

    def test_watchdog_stopping_and_status(self, notify_socket: tuple[str, socket.socket]) -> None:
        """Each call sends its own assignment."""
        path, sock = notify_socket
        n = Notifier(path)
        n.watchdog()
        n.status("3 files waiting")
        n.stopping()
        assert [sock.recv(4096) for _ in range(3)] == [
            b"WATCHDOG=1",
            b"STATUS=3 files waiting",
            b"STOPPING=1",
        ]

    def test_abstract_socket_address(self) -> None:
        """An address starting with @ is an abstract socket (no file)."""
        name = f"refdata-test-{os.getpid()}-{id(self)}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            sock.settimeout(5)
            assert Notifier("@" + name).ready() is True
            assert sock.recv(4096) == b"READY=1"

    def test_module_functions_use_notify_socket(
        self, notify_socket: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """notify.ready()/watchdog()/stopping() read NOTIFY_SOCKET, as systemd sets it."""
        path, sock = notify_socket
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        notify.ready()
        notify.watchdog()
        notify.stopping()
        assert [sock.recv(4096) for _ in range(3)] == [b"READY=1", b"WATCHDOG=1", b"STOPPING=1"]

    def test_without_notify_socket_nothing_happens(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Run by hand (no NOTIFY_SOCKET) every call is a quiet no-op."""
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        assert Notifier.from_environment().enabled is False
        assert notify.ready() is False
        assert notify.watchdog() is False

    def test_vanished_socket_does_not_raise(self, tmp_path: Path) -> None:
        """A socket that went away makes the call return False instead of crashing the daemon."""
        assert Notifier(str(tmp_path / "gone")).watchdog() is False


class TestWatchdogInterval:
    def test_half_of_watchdog_usec(self) -> None:
        """WatchdogSec=60 (WATCHDOG_USEC=60000000) means a ping every 30 s."""
        assert watchdog_interval_seconds({"WATCHDOG_USEC": "60000000"}) == 30.0

    def test_pid_of_another_process_disables_it(self) -> None:
        """WATCHDOG_PID meant for another process means this one must not ping."""
        env = {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}
        assert watchdog_interval_seconds(env) is None
        assert watchdog_interval_seconds({**env, "WATCHDOG_PID": str(os.getpid())}) == 30.0

    @pytest.mark.parametrize("value", [None, "", "0", "soon", "-5"])
    def test_absent_or_invalid_is_none(self, value: str | None) -> None:
        """No watchdog configured (or garbage) means no pings."""
        env = {} if value is None else {"WATCHDOG_USEC": value}
        assert watchdog_interval_seconds(env) is None


def load_windows_shim() -> object:
    spec = importlib.util.spec_from_file_location("refdata_windows_service", WINDOWS_SHIM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestWindowsShim:
    def test_imports_on_any_platform(self) -> None:
        """Importing the shim never fails; the service class exists exactly when pywin32 does."""
        shim = load_windows_shim()
        has_pywin32 = importlib.util.find_spec("win32serviceutil") is not None
        assert hasattr(shim, "RefdataMonitorService") is has_pywin32
        assert callable(shim.run_service)  # type: ignore[attr-defined]
        if has_pywin32:
            assert shim.RefdataMonitorService._svc_name_ == "RefdataMonitor"  # type: ignore[attr-defined]

    @pytest.mark.skipif(sys.platform == "win32", reason="checks the message shown where pywin32 is missing")
    def test_without_pywin32_it_explains_what_to_do(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without pywin32 the command line exits 2 with a message naming pywin32 and NSSM."""
        if importlib.util.find_spec("win32serviceutil") is not None:
            pytest.skip("pywin32 is installed here")
        shim = load_windows_shim()
        assert shim.main(["service.py", "install"]) == 2  # type: ignore[attr-defined]
        err = capsys.readouterr().err
        assert "pywin32" in err
        assert "NSSM" in err

    def test_runs_the_same_entry_point_as_systemd(self) -> None:
        """The shim calls backend.daemon.loop.run with the settings and its stop event, nothing else."""
        source = WINDOWS_SHIM.read_text(encoding="utf-8")
        assert "from backend.daemon.loop import run" in source
        assert "run(settings, stop_event)" in source


class TestSetupDirectories:
    def run_script(self, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "setup_directories.py")],
            cwd=cwd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_creates_dropoff_and_data_and_is_idempotent(self, tmp_path: Path) -> None:
        """The script creates every drop folder and the data folder, then reports nothing new."""
        env = {"DROPOFF_BASE_PATH": str(tmp_path / "drop"), "DATA_DIR": str(tmp_path / "data")}
        first = self.run_script(tmp_path, **env)
        assert first.returncode == 0, first.stderr
        for kind in ("reference_data_table", "none_reference_data_table"):
            for load in ("fullload", "append"):
                for sub in ("processed", "error"):
                    assert (tmp_path / "drop" / kind / load / sub).is_dir()
        assert (tmp_path / "data").is_dir()
        assert f"created {tmp_path / 'drop' / 'reference_data_table' / 'append' / 'error'}" in first.stdout
        assert f"created {tmp_path / 'data'}" in first.stdout
        second = self.run_script(tmp_path, **env)
        assert second.returncode == 0
        assert "created" not in second.stdout

    def test_unusable_path_exits_2(self, tmp_path: Path) -> None:
        """A dropoff path that is a file is a configuration error (exit code 2, message on stderr)."""
        blocker = tmp_path / "drop"
        blocker.write_text("not a folder")
        result = self.run_script(tmp_path, DROPOFF_BASE_PATH=str(blocker), DATA_DIR=str(tmp_path / "data"))
        assert result.returncode == 2
        assert "not a folder" in result.stderr
