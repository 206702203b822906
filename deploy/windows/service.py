"""Windows service shim: runs the same `backend.daemon.loop.run(settings, stop_event)` as systemd.

    python deploy\\windows\\service.py --startup auto install   (elevated prompt)
    python deploy\\windows\\service.py start | stop | remove
    python deploy\\windows\\service.py debug                    (in the console, Ctrl+C stops)

It holds no logic of its own: it moves to the install folder (services start in
C:\\Windows\\System32, where .env and config\\settings.yaml would not be found), loads the
settings, and runs the daemon until the service manager asks it to stop. See README.md beside
this file for the pywin32 pitfalls (error 1053, virtual environments).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAME = "RefdataMonitor"
DEFAULT_LOG_FILE = ROOT / "logs" / "refdata-monitor.log"
PYWIN32_MISSING = (
    "pywin32 is not installed, so the Windows service cannot be registered: run "
    "`pip install -r requirements.txt` on Windows (it installs pywin32 there), or use NSSM "
    "as described in deploy/windows/README.md."
)

try:
    import servicemanager
    import win32service
    import win32serviceutil
except ImportError:  # not Windows, or pywin32 missing: importing this file must still work
    servicemanager = win32service = win32serviceutil = None


def run_service(stop_event: threading.Event) -> None:
    """Load the settings from the install folder and run the daemon until `stop_event` is set."""
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from backend.config import load_settings
    from backend.daemon.loop import run
    from backend.log import configure_logging

    settings = load_settings()
    # A service has no console: without LOG_FILE its logs would go nowhere.
    configure_logging(settings.log_level, settings.log_format, settings.log_file or DEFAULT_LOG_FILE)
    run(settings, stop_event)


if win32serviceutil is not None:

    class RefdataMonitorService(win32serviceutil.ServiceFramework):  # type: ignore[misc]
        """The service as the Windows service manager sees it."""

        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = "Reference data file monitor"
        _svc_description_ = "Loads CSV files dropped into the dropoff folders into reference tables."

        def __init__(self, args: Any) -> None:
            super().__init__(args)
            self._stop_event = threading.Event()

        def SvcStop(self) -> None:  # name fixed by pywin32
            # The daemon finishes or rolls back the current load within SHUTDOWN_TIMEOUT_SECONDS.
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=60_000)
            self._stop_event.set()

        def SvcDoRun(self) -> None:  # name fixed by pywin32
            servicemanager.LogMsg(
                servicemanager.EVENTLOG_INFORMATION_TYPE,
                servicemanager.PYS_SERVICE_STARTED,
                (self._svc_name_, ""),
            )
            try:
                run_service(self._stop_event)
            except BaseException as exc:
                # The event log is the one place an operator looks when a service will not start.
                servicemanager.LogErrorMsg(f"{SERVICE_NAME} stopped with {type(exc).__name__}: {exc}")
                raise
            servicemanager.LogMsg(
                servicemanager.EVENTLOG_INFORMATION_TYPE,
                servicemanager.PYS_SERVICE_STOPPED,
                (self._svc_name_, ""),
            )


def main(argv: list[str] | None = None) -> int:
    """Install/start/stop/remove/debug the service (pywin32's command line)."""
    argv = sys.argv if argv is None else argv
    if win32serviceutil is None:
        print(PYWIN32_MISSING, file=sys.stderr)
        return 2
    if len(argv) == 1:
        # Started by the service manager (no arguments): host the service in this process.
        servicemanager.Initialize()
        servicemanager.PrepareToHostSingle(RefdataMonitorService)
        servicemanager.StartServiceCtrlDispatcher()
        return 0
    win32serviceutil.HandleCommandLine(RefdataMonitorService, argv=argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
