"""Prometheus metrics of one daemon, in a private registry (never the process-global one).

Labels never carry file names: they would make one series per file. Table names are fine: a
deployment has tens of tables, and "table X was not refreshed for 25 h" is the alert operators
need (``time() - refdata_table_last_success_timestamp_seconds > 25 * 3600``). Stages come from
the code's own error classes, so they stay a closed set too.

The standard ``process_*``, ``python_gc_*`` and ``python_info`` series come from
prometheus_client's own collectors; ``*_created`` series are switched off (they double the
output and no alert uses them).
"""

from __future__ import annotations

import platform
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

from backend import __version__

#: What can happen to a file; every outcome is exported from the start, at 0.
OUTCOMES: tuple[str, ...] = ("loaded", "duplicate", "error", "cancelled")
#: Outcomes that are failures, counted by stage as well; `retry` leaves the file for later.
FAILURES: tuple[str, ...] = ("error", "cancelled", "retry")
#: Stages a failure is most often counted under, exported at 0 from the start.
COMMON_STAGES: tuple[str, ...] = ("read", "detect", "plan", "stage", "validate", "publish", "database")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Loads take from well under a second (small lookup tables) to many minutes (large fullloads).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

# Process-wide switch of prometheus_client; this process exports nothing but our registry.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The daemon's metrics; `render()` gives the text a scraper reads.

    Files are counted with `record_file` and `record_retry`; the gauges and the restart counter
    are public prometheus_client objects (``metrics.queue_depth.set(3)``,
    ``metrics.watcher_restarts.inc()``).
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
        self.table_files = Counter(
            "refdata_table_files", "Files handled per table, by outcome.", ["table", "outcome"], registry=r
        )
        self.table_rows_loaded = Counter(
            "refdata_table_rows_loaded", "Rows loaded per table.", ["table"], registry=r
        )
        self.table_last_success = Gauge(
            "refdata_table_last_success_timestamp_seconds",
            "When the table's last successful load finished (seconds since the epoch).",
            ["table"],
            registry=r,
        )
        self.table_last_rows = Gauge(
            "refdata_table_last_load_rows", "Rows of the table's last successful load.", ["table"], registry=r
        )
        self.failures = Counter(
            "refdata_failures",
            "Failed attempts by the stage that failed and what became of the file (error, cancelled, retry).",
            ["stage", "outcome"],
            registry=r,
        )
        for stage in COMMON_STAGES:
            for outcome in FAILURES:
                self.failures.labels(stage=stage, outcome=outcome)
        self.database_up = Gauge(
            "refdata_database_up", "1 when the database answers (checked at scrape time), else 0.", registry=r
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
        self.build_info = Info("refdata_build", "Version of the daemon and of Python.", registry=r)
        self.build_info.info({"version": version, "python": platform.python_version()})
        # process_* (memory, CPU, open files, start time), python_info, python_gc_*.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

    def watch_database(self, is_up: Callable[[], bool]) -> None:
        """Read `refdata_database_up` from `is_up` at every scrape."""
        self.database_up.set_function(lambda: 1.0 if is_up() else 0.0)

    def record_file(
        self,
        outcome: str,
        *,
        table: str | None = None,
        rows: int = 0,
        seconds: float | None = None,
        stage: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        """Count one finished file, its loaded rows and how long it took.

        Args:
            outcome: one of OUTCOMES.
            table: the table it went to, when known (the per-table series).
            rows: rows loaded.
            seconds: how long it took.
            stage: for a failure, the stage that failed.
            finished_at: for a loaded file, when (seconds since the epoch; the table's freshness).

        Raises:
            ValueError: `outcome` is not one of OUTCOMES (labels must stay a closed set).
        """
        # A str Enum (settle.Outcome) would become "Outcome.ERROR" as a label value.
        outcome = str(getattr(outcome, "value", outcome))
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        self.files.labels(outcome=outcome).inc()
        if rows:
            self.rows_loaded.inc(rows)
        if seconds is not None:
            self.load_duration.observe(seconds)
        if outcome in FAILURES:
            self.failures.labels(stage=stage or "load", outcome=outcome).inc()
        if table:
            self.table_files.labels(table=table, outcome=outcome).inc()
            if outcome == "loaded":
                self.table_rows_loaded.labels(table=table).inc(rows)
                if finished_at is not None:
                    self.table_loaded(table, finished_at, rows)

    def table_loaded(self, table: str, finished_at: float, rows: int | None) -> None:
        """Set a table's freshness gauges (also used at start-up, from the tracking table)."""
        self.table_last_success.labels(table=table).set(finished_at)
        if rows is not None:
            self.table_last_rows.labels(table=table).set(rows)

    def record_retry(self, stage: str) -> None:
        """Count an attempt that failed for now; the file stays and is tried again."""
        self.failures.labels(stage=stage, outcome="retry").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every metric."""
        return generate_latest(self.registry)
