"""Metrics: every series is exported from the start, verbs move the right series, no per-file labels."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend import __version__
from backend.daemon.metrics import COMMON_STAGES, OUTCOMES, Metrics
from backend.daemon.settle import Outcome

PROMTOOL = shutil.which("promtool")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the rendered text back into {(sample name, labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode("utf-8")):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class TestRender:
    def test_every_series_is_present_before_anything_happens(self) -> None:
        """A fresh daemon already exports each metric, outcomes at 0, so alerts can use rate()."""
        values = samples(Metrics())
        for outcome in OUTCOMES:
            assert values[("refdata_files_total", (("outcome", outcome),))] == 0
        for name in (
            "refdata_rows_loaded_total",
            "refdata_load_duration_seconds_count",
            "refdata_queue_depth",
            "refdata_files_waiting_stability",
            "refdata_last_successful_scan_timestamp_seconds",
            "refdata_watcher_restarts_total",
        ):
            assert values[(name, ())] == 0, name

    def test_standard_process_and_platform_collectors_are_exported(self) -> None:
        """prometheus_client's own process_*, python_info and python_gc_* series are there, no custom RSS."""
        values = samples(Metrics())
        assert values[("process_resident_memory_bytes", ())] > 1_000_000
        assert ("process_start_time_seconds", ()) in values
        assert any(name == "python_info" for name, _ in values)
        assert any(name == "python_gc_objects_collected_total" for name, _ in values)
        assert not any(name.startswith("refdata_process_") for name, _ in values)

    def test_no_created_series(self) -> None:
        """No *_created sample accompanies the counters and histograms."""
        m = Metrics()
        m.record_file("loaded", table="countries", rows=1, seconds=0.1, finished_at=1.0)
        assert not [line for line in m.render().decode().splitlines() if "_created" in line]

    def test_database_up_is_read_at_scrape_time(self) -> None:
        """refdata_database_up follows the callable it watches: 1 while it answers, 0 when not."""
        m = Metrics()
        state = [True]
        m.watch_database(lambda: state[0])
        assert samples(m)[("refdata_database_up", ())] == 1
        state[0] = False
        assert samples(m)[("refdata_database_up", ())] == 0

    @pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")
    def test_promtool_accepts_the_exposition(self) -> None:
        """promtool check metrics finds no problem (naming, units, help, types) in what /metrics serves."""
        assert PROMTOOL is not None
        m = Metrics()
        m.watch_database(lambda: True)
        m.record_file("loaded", table="countries", rows=3, seconds=1.0, finished_at=1_700_000_000.0)
        m.record_file("error", table="countries", stage="detect")
        m.record_retry("database")
        result = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=m.render(), capture_output=True, timeout=60, check=False
        )
        assert result.returncode == 0, (result.stdout + result.stderr).decode()
        assert result.stdout + result.stderr == b""

    def test_build_info_carries_the_version(self) -> None:
        """refdata_build_info is 1 with the daemon's version as a label."""
        values = samples(Metrics())
        [(labels, value)] = [(dict(k[1]), v) for k, v in values.items() if k[0] == "refdata_build_info"]
        assert value == 1
        assert labels["version"] == __version__
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", labels["python"])

    def test_render_is_prometheus_text(self) -> None:
        """The output has HELP/TYPE lines and ends with a newline."""
        text = Metrics().render().decode("utf-8")
        assert "# TYPE refdata_files_total counter" in text
        assert "# TYPE refdata_load_duration_seconds histogram" in text
        assert text.endswith("\n")

    def test_two_instances_do_not_share_a_registry(self) -> None:
        """Each Metrics has its own registry: a second one neither fails nor sees the first's counts."""
        first, second = Metrics(), Metrics()
        first.record_file("error")
        assert samples(second)[("refdata_files_total", (("outcome", "error"),))] == 0


class TestRecording:
    def test_loaded_file_counts_rows_and_duration(self) -> None:
        """A loaded file moves the outcome counter, the rows counter and the duration histogram."""
        m = Metrics()
        m.record_file("loaded", rows=250, seconds=1.5)
        m.record_file("loaded", rows=50, seconds=0.2)
        values = samples(m)
        assert values[("refdata_files_total", (("outcome", "loaded"),))] == 2
        assert values[("refdata_rows_loaded_total", ())] == 300
        assert values[("refdata_load_duration_seconds_count", ())] == 2
        assert values[("refdata_load_duration_seconds_sum", ())] == pytest.approx(1.7)

    def test_other_outcomes_count_without_rows(self) -> None:
        """A duplicate counts as a file but adds no rows; a duration is recorded only when given."""
        m = Metrics()
        m.record_file("duplicate")
        m.record_file("cancelled", seconds=3.0)
        values = samples(m)
        assert values[("refdata_files_total", (("outcome", "duplicate"),))] == 1
        assert values[("refdata_files_total", (("outcome", "cancelled"),))] == 1
        assert values[("refdata_rows_loaded_total", ())] == 0
        assert values[("refdata_load_duration_seconds_count", ())] == 1

    def test_unknown_outcome_is_refused(self) -> None:
        """Labels stay a closed set: an unknown outcome (e.g. a file name) raises."""
        with pytest.raises(ValueError, match="unknown outcome"):
            Metrics().record_file("countries.csv")

    def test_gauges_and_restarts(self) -> None:
        """The public gauges and the restart counter show up in the rendered text."""
        m = Metrics()
        m.last_successful_scan.set(1_700_000_000.5)
        m.files_waiting_stability.set(4)
        m.queue_depth.set(2)
        m.watcher_restarts.inc()
        values = samples(m)
        assert values[("refdata_last_successful_scan_timestamp_seconds", ())] == 1_700_000_000.5
        assert values[("refdata_files_waiting_stability", ())] == 4
        assert values[("refdata_queue_depth", ())] == 2
        assert values[("refdata_watcher_restarts_total", ())] == 1

    def test_no_series_is_labelled_by_file(self) -> None:
        """Only closed label sets exist (outcome, table, stage, build info), never a file name."""
        m = Metrics()
        m.record_file("loaded", table="countries", rows=1, seconds=0.1, finished_at=1.0)
        m.record_file("error", table="countries", stage="detect")
        labels = {name for (n, pairs) in samples(m) for name, _v in pairs if n.startswith("refdata_")}
        assert labels <= {"outcome", "le", "version", "python", "table", "stage"}
        assert not any("countries.csv" in value for (_n, pairs) in samples(m) for _k, value in pairs)


class TestPerTable:
    def test_loaded_file_moves_the_tables_freshness_rows_and_outcome(self) -> None:
        """A load sets the table's last-success timestamp and last row count and counts its rows and file."""
        m = Metrics()
        m.record_file("loaded", table="countries", rows=250, seconds=1.0, finished_at=1_700_000_000.0)
        m.record_file("loaded", table="countries", rows=240, seconds=1.0, finished_at=1_700_000_100.0)
        m.record_file("duplicate", table="countries")
        values = samples(m)
        table = (("table", "countries"),)
        assert values[("refdata_table_last_success_timestamp_seconds", table)] == 1_700_000_100.0
        assert values[("refdata_table_last_load_rows", table)] == 240
        assert values[("refdata_table_rows_loaded_total", table)] == 490
        assert values[("refdata_table_files_total", (("outcome", "loaded"), *table))] == 2
        assert values[("refdata_table_files_total", (("outcome", "duplicate"), *table))] == 1

    def test_failures_are_counted_by_stage(self) -> None:
        """Refused files and retries count under the stage that failed; common stages start at 0."""
        m = Metrics()
        for stage in COMMON_STAGES:
            assert samples(m)[("refdata_failures_total", (("outcome", "error"), ("stage", stage)))] == 0
        m.record_file("error", table="t", stage="validate")
        m.record_file("cancelled", table="t", stage="cancel")
        m.record_retry("database")
        m.record_retry("database")
        values = samples(m)
        assert values[("refdata_failures_total", (("outcome", "error"), ("stage", "validate")))] == 1
        assert values[("refdata_failures_total", (("outcome", "cancelled"), ("stage", "cancel")))] == 1
        assert values[("refdata_failures_total", (("outcome", "retry"), ("stage", "database")))] == 2

    def test_an_outcome_enum_is_labelled_by_its_value(self) -> None:
        """settle passes Outcome members: the label is "error", not "Outcome.ERROR"."""
        m = Metrics()
        m.record_file(Outcome.ERROR, table="t", stage="detect")
        values = samples(m)
        assert values[("refdata_files_total", (("outcome", "error"),))] == 1
        assert not any("Outcome." in v for (_n, pairs) in values for _k, v in pairs)
