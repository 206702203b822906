"""Prometheus metrics of one daemon, in a private registry (never the process-global one).

Labels never carry file or table names: they would make one series per file.
"""

from __future__ import annotations

import platform

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from backend import __version__

#: What can happen to a file; every outcome is exported from the start, at 0.
OUTCOMES: tuple[str, ...] = ("loaded", "duplicate", "error", "cancelled")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Loads take from well under a second (small lookup tables) to many minutes (large fullloads).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """The daemon's metrics; `render()` gives the text a scraper reads.

    Files are counted with `record_file`; the gauges and the restart counter are public
    prometheus_client objects (``metrics.queue_depth.set(3)``, ``metrics.watcher_restarts.inc()``).
    """

    def __init__(self, *, version: str = __version__) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.files = Counter("refdata_files", "Files handled, by outcome.", ["outcome"], registry=r)
        for outcome in OUTCOMES:
            self.files.labels(outcome=outcome)
        self.rows_loaded = Counter("refdata_rows_loaded", "Rows loaded into tables.", registry=r)
        self.load_duration = Histogram(
            "refdata_load_duration_seconds",
            "Time from claiming a file to its final move.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "refdata_queue_depth", "Ready files handed to workers, not done yet.", registry=r
        )
        self.files_waiting_stability = Gauge(
            "refdata_files_waiting_stability", "Files seen but not yet stable.", registry=r
        )
        self.last_successful_scan = Gauge(
            "refdata_last_successful_scan_timestamp_seconds",
            "When the drop folders were last listed without error (seconds since the epoch).",
            registry=r,
        )
        self.watcher_restarts = Counter(
            "refdata_watcher_restarts", "Times the filesystem watcher was restarted.", registry=r
        )
        process = psutil.Process()
        self.resident_memory = Gauge(
            "refdata_process_resident_memory_bytes", "Resident memory of the daemon.", registry=r
        )
        # Read at scrape time, so the value is never older than the scrape.
        self.resident_memory.set_function(lambda: float(process.memory_info().rss))
        self.build_info = Info("refdata_build", "Version of the daemon and of Python.", registry=r)
        self.build_info.info({"version": version, "python": platform.python_version()})

    def record_file(self, outcome: str, *, rows: int = 0, seconds: float | None = None) -> None:
        """Count one finished file, its loaded rows and how long it took.

        Raises:
            ValueError: `outcome` is not one of OUTCOMES (labels must stay a closed set).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        self.files.labels(outcome=outcome).inc()
        if rows:
            self.rows_loaded.inc(rows)
        if seconds is not None:
            self.load_duration.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every metric."""
        return generate_latest(self.registry)
