"""Metrics: every series is exported from the start, verbs move the right series, no per-file labels."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend import __version__
from backend.daemon.metrics import OUTCOMES, Metrics


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

    def test_resident_memory_is_read_at_scrape_time(self) -> None:
        """The process memory gauge is positive (psutil is asked on each render)."""
        assert samples(Metrics())[("refdata_process_resident_memory_bytes", ())] > 1_000_000

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
        """Only the outcome and build-info labels exist, whatever happened."""
        m = Metrics()
        m.record_file("loaded", rows=1, seconds=0.1)
        m.record_file("error")
        labels = {name for (_n, pairs) in samples(m) for name, _v in pairs}
        assert labels <= {"outcome", "le", "version", "python"}
