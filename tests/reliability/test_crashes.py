"""Scenario 1: kill -9 of the daemon at random instants during a stream of drops, restarting it each time."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pytest

from tests.reliability.support import Campaign, Daemon, rows_for_size

pytestmark = [pytest.mark.reliability, pytest.mark.daemon]

SCENARIO = "1 crashes (kill -9)"
STREAMS = (
    ("ref", "fullload", "crash_rf"),
    ("noref", "fullload", "crash_nf"),
    ("ref", "append", "crash_ra"),
    ("noref", "append", "crash_na"),
)
KB, MB = 1024, 1024 * 1024


def pick_size(rng: random.Random, largest: int, large_share: float) -> int:
    """Mostly small files, some medium, a share as large as `largest` bytes (so some kills land mid-load)."""
    roll = rng.random()
    if roll < 1 - large_share - 0.3:
        return rng.randint(1 * KB, 8 * KB)
    if roll < 1 - large_share:
        return rng.randint(16 * KB, 256 * KB)
    return rng.randint(min(largest, 512 * KB), largest)


@dataclass
class Slot:
    """One daemon that is killed and restarted over and over, and when its next kill is due."""

    daemon: Daemon
    early: bool
    kill_at: float | None = None


def run_kill_campaign(
    c: Campaign,
    share,
    *,
    kills: int,
    largest: int,
    seed: int,
    after_up: float,
    drop_every: tuple[float, float] = (0.2, 0.9),
    large_share: float = 0.15,
    slots: int = 3,
) -> None:
    """`slots` daemons share the dropoff; each is killed at a random instant of its life and restarted.

    A third of the kills land at a random instant of start-up (schema check, recovery of the
    predecessor's claims); the others 0 to `after_up` seconds after the daemon answered
    /healthz, while it discovers, hashes, claims, stages, publishes and moves the files that
    keep arriving. Timing kills from /healthz keeps them meaningful on a slow machine too.
    """
    rng = random.Random(seed)
    env = {"workers": 2, "ingest_batch_size": 2000}

    def spawn(name: str) -> Slot:
        slot = Slot(c.daemon(name, **env), early=rng.random() < 1 / 3)
        if slot.early:
            slot.kill_at = time.monotonic() + rng.uniform(0.2, 2.0)
        return slot

    running = [spawn(f"k{i}") for i in range(slots)]
    reader = c.reader(interval=0.02)
    n = done = up = 0
    next_drop = time.monotonic()
    while done < kills:
        now = time.monotonic()
        if now >= next_drop:
            kind, mode, stem = STREAMS[n % len(STREAMS)]
            c.drop_tagged(
                kind, mode, stem, n, rows_for_size(pick_size(rng, largest, large_share)), payload_bytes=60
            )
            n += 1
            next_drop = now + rng.uniform(*drop_every)
        for i, slot in enumerate(running):
            if slot.kill_at is None:
                if slot.daemon.healthy():
                    slot.kill_at = now + rng.uniform(0.0, after_up)
            elif now >= slot.kill_at and done < kills:
                slot.daemon.kill9()
                share.fault()
                done += 1
                up += "monitor started" in slot.daemon.log()
                running[i] = spawn(slot.daemon.name.split(".")[0])
        time.sleep(0.02)
    daemons = [slot.daemon for slot in running]
    for d in daemons:
        d.wait_healthy(60)
    c.wait_settled(timeout=max(240, 30 * largest / MB))
    outcome = c.check(daemons)
    assert outcome.statuses["loaded"] == n, outcome.statuses
    assert up >= kills // 2, f"only {up} of {kills} kills hit a running monitor"
    interrupted = outcome.statuses["interrupted"]
    events = {
        name: c.scalar(f"SELECT COUNT(*) FROM ref.\"File_Monitor_Events\" WHERE event = '{name}'")
        for name in ("moved_after_recovery", "move_reconciled")
    }
    share.note(
        f"{kills} kill -9 ({up} of a running monitor, {kills - up} during start-up) over {n} files "
        f"(largest {largest / MB:.0f} MB): {interrupted} loads interrupted mid-way and redone, "
        f"{events.get('moved_after_recovery', 0)} file(s) moved after a kill between commit and move, "
        f"{events.get('move_reconciled', 0)} moves recorded after a kill between move and record; "
        f"{reader.reads:,} reads of the fullload tables saw only whole versions"
    )
    share.survived()


class TestKillNine:
    def test_fifty_kills_at_random_instants_keep_every_invariant(self, campaign: Campaign, share):
        """50 kill -9 at random instants amid fullload and append drops lose and repeat nothing."""
        run_kill_campaign(campaign, share, kills=50, largest=MB, seed=1_050, after_up=1.5)

    @pytest.mark.soak
    @pytest.mark.timeout(3600)
    def test_two_hundred_kills_with_files_up_to_50_mb(self, campaign: Campaign, share):
        """200 kill -9 with files up to 50 MB keep every invariant (soak)."""
        run_kill_campaign(
            campaign,
            share,
            kills=200,
            largest=50 * MB,
            seed=1_200,
            after_up=10.0,
            drop_every=(1.0, 4.0),
            large_share=0.05,
        )
