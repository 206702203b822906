"""Scenario 4: several daemons on one dropoff and database, and a burst of files into one daemon."""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.reliability.support import Campaign

pytestmark = [pytest.mark.reliability, pytest.mark.daemon]

SCENARIO = "4 concurrency and load"
FOLDER_PLAN = (("ref", "fullload"), ("noref", "fullload"), ("ref", "append"), ("noref", "append"))


def drop_burst(c: Campaign, count: int, rng: random.Random, rows: tuple[int, int], tables: int) -> int:
    """Drop `count` files spread over the four folders and `tables` tables per folder; returns the rows."""
    total = 0
    for n in range(count):
        kind, mode = FOLDER_PLAN[n % 4]
        stem = f"{kind}_{mode}_{(n // 4) % tables}"
        size = rng.randint(*rows)
        c.drop_tagged(kind, mode, stem, n, size)
        total += size
    return total


class TestSeveralDaemons:
    def test_three_daemons_load_300_files_each_exactly_once(self, campaign: Campaign, share):
        """Three daemons on one dropoff and database load 300 files dropped at once, each exactly once."""
        rng = random.Random(4_300)
        daemons = [campaign.daemon(f"m{i}", workers=2) for i in range(3)]
        for d in daemons:
            d.wait_healthy()
        reader = campaign.reader()
        started = time.monotonic()
        rows = drop_burst(campaign, 300, rng, (5, 200), tables=5)
        campaign.wait_settled(timeout=180)
        elapsed = time.monotonic() - started
        outcome = campaign.check(daemons)
        assert outcome.statuses["loaded"] == 300, outcome.statuses
        owners = {r["owner"].split(":")[1] for r in campaign.tracking() if r["status"] == "loaded"}
        assert len(owners) == 3, "every daemon should have loaded some files"
        share.note(
            f"3 daemons, 300 files at once: {300 / elapsed:.1f} files/s, {rows / elapsed:,.0f} rows/s "
            f"({elapsed:.1f} s; {reader.reads:,} consistent reads of the fullload tables meanwhile)"
        )
        share.survived()


class TestBurst:
    @pytest.mark.parametrize(
        "count",
        [
            pytest.param(150, id="150-files"),
            pytest.param(10_000, id="10000-files", marks=[pytest.mark.soak, pytest.mark.timeout(3600)]),
        ],
    )
    def test_a_burst_of_small_files_is_all_processed_with_flat_memory(self, campaign: Campaign, share, count):
        """Thousands of small files dropped at once into one daemon are all loaded; its memory stays flat."""
        rng = random.Random(4_000 + count)
        d = campaign.daemon("burst", workers=2)
        d.wait_healthy()
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    samples.append(d.rss_mb())
                except Exception:  # noqa: BLE001 - the process may be gone at the very end
                    return
                stop.wait(0.5)

        baseline = d.rss_mb()
        sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        sampler.start()
        started = time.monotonic()
        rows = drop_burst(campaign, count, rng, (1, 5), tables=10)
        try:
            campaign.wait_settled(timeout=max(240, count / 4))
        finally:
            stop.set()
            sampler.join(5)
        elapsed = time.monotonic() - started
        outcome = campaign.check([d])
        assert outcome.statuses["loaded"] == count
        # Flat: what the daemon holds after the first tenth of the run (pools, caches, the
        # tracker's bookkeeping) must not keep growing with the number of files.
        warm = samples[max(1, len(samples) // 10)] if len(samples) > 2 else baseline
        peak = max(samples, default=baseline)
        share.note(
            f"{count:,} small files into one daemon: {count / elapsed:.1f} files/s, "
            f"{rows / elapsed:,.0f} rows/s; "
            f"RSS {baseline:.0f} MB idle, {warm:.0f} MB warm, {peak:.0f} MB peak"
        )
        assert peak - warm < 60, f"memory grew from {warm:.0f} MB to {peak:.0f} MB"
        share.survived()
