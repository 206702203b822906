"""Scenario 3: unwritable folders, a vanishing dropoff, files changed under the loader, a full disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.support import (
    IS_ROOT,
    Campaign,
    can_drop_privileges,
    digest_rows,
    sha256_of,
    tagged_rows,
    wait_for,
)

pytestmark = [pytest.mark.reliability, pytest.mark.daemon]

SCENARIO = "3 filesystem faults"


def processing_for(c: Campaign, name: str) -> bool:
    return any(r["status"] == "processing" and r["file_name"] == name for r in c.tracking())


def reading(c: Campaign, name: str) -> bool:
    """Whether the load of `name` has opened the file and detected its format (it reads from its fd)."""
    return bool(
        c.scalar(
            'SELECT COUNT(*) FROM ref."File_Monitor_Events" e JOIN ref."File_Monitor_Tracking" t '
            "ON t.id = e.tracking_id WHERE e.event = 'detected' AND t.file_name = :name",
            name=name,
        )
    )


def mount(*args: str) -> str | None:
    """Run mount/umount; None on success, else why it failed."""
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    return (
        None if result.returncode == 0 else (result.stderr.strip() or f"{args[0]} exit {result.returncode}")
    )


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `path`, or skip the test saying why it cannot be made."""
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); full-disk case not run")
    path.mkdir(parents=True, exist_ok=True)
    why = mount("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    if why is not None:
        pytest.skip(f"cannot mount a tmpfs here ({why}); full-disk case not run")
    try:
        yield path
    finally:
        mount("umount", "-l", str(path))


class TestFoldersRefusingWrites:
    def test_processed_and_error_folders_without_write_permission(self, campaign: Campaign, share):
        """A loaded file that cannot reach processed/ stays loaded once; a refused one waits for error/."""
        reason = can_drop_privileges()
        if reason:
            pytest.skip(reason)
        d = campaign.daemon("perm", workers=2, unprivileged=True)
        d.wait_healthy()
        processed = campaign.folder("ref", "append") / "processed"
        error = campaign.folder("noref", "fullload") / "error"
        processed.chmod(0o500)
        error.chmod(0o500)
        share.fault(2)
        try:
            good = campaign.drop_tagged("ref", "append", "perm_ok", 0, 300)
            bad = campaign.drop_bytes(
                "noref", "fullload", "perm_bad.csv", b"a,b\n1,2\n3,4,5\n", expect="error"
            )
            wait_for(
                lambda: campaign.attempts("retry", "could not be moved to error/")
                and any(r["status"] == "loaded" for r in campaign.tracking()),
                60,
                what="a load that could not be moved and a refusal that could not be moved",
            )
            time.sleep(1.5)  # several more scans: the loaded file must not be loaded again
            assert good.path.exists() and bad.path.exists()
            assert campaign.count("perm_ok") == 300
            assert d.healthy()
        finally:
            processed.chmod(0o750)
            error.chmod(0o750)
        campaign.wait_settled()
        outcome = campaign.check([d])
        assert outcome.statuses["loaded"] == 1 and outcome.statuses["error"] == 1
        share.survived()


class TestDropoffDisappearing:
    def test_dropoff_renamed_away_mid_load_and_back(self, campaign: Campaign, share):
        """The dropoff vanishes while a file loads and comes back: the file is moved once, loaded once."""
        d = campaign.daemon("gone", workers=2)
        d.wait_healthy()
        base = campaign.root / "dropoff"
        big = campaign.drop_tagged("noref", "append", "vanish", 0, 60_000, payload_bytes=40)
        wait_for(lambda: reading(campaign, big.path.name), 60, interval=0.02, what="the load started")
        away = base.with_name("dropoff.away")
        os.rename(base, away)
        share.fault()
        wait_for(
            lambda: d.get_json("/readyz")[1]["checks"]["dropoff"]["status"] == "fail",
            20,
            what="/readyz fails",
        )
        wait_for(lambda: campaign.count("vanish") == 60_000, 60, what="the load committed meanwhile")
        time.sleep(1)
        assert d.healthy()
        os.rename(away, base)
        campaign.drop_tagged("noref", "append", "vanish", 1, 10)
        campaign.wait_settled()
        campaign.check([d])
        moved_after = [r for r in campaign.tracking() if r["file_name"] == big.path.name]
        assert [r["status"] for r in moved_after] == ["loaded"]
        share.survived()

    def test_share_unmounted_and_mounted_again(self, campaign: Campaign, share):
        """A bind-mounted dropoff is unmounted mid-load and mounted again: nothing lost or loaded twice."""
        if not IS_ROOT or shutil.which("mount") is None:
            pytest.skip(
                "unmounting a share needs root and mount(8); the rename case covers a vanishing dropoff"
            )
        base = campaign.root / "dropoff"
        share_dir = campaign.root / "share"
        share_dir.mkdir()
        why = mount("mount", "--bind", str(share_dir), str(base))
        if why is not None:
            pytest.skip(f"cannot bind-mount here ({why})")
        try:
            d = campaign.daemon("share", workers=2)
            d.wait_healthy()
            campaign.drop_tagged("ref", "append", "mounted", 0, 100)
            campaign.wait_settled()
            big = campaign.drop_tagged("ref", "append", "mounted", 1, 60_000, payload_bytes=40)
            wait_for(
                lambda: processing_for(campaign, big.path.name), 60, interval=0.02, what="the load started"
            )
            assert mount("umount", "-l", str(base)) is None
            share.fault()
            wait_for(lambda: campaign.count("mounted") == 60_100, 60, what="the load committed meanwhile")
            time.sleep(1.5)
            assert d.healthy()
            assert mount("mount", "--bind", str(share_dir), str(base)) is None
            campaign.drop_tagged("ref", "append", "mounted", 2, 10)
            campaign.wait_settled()
            campaign.check([d])
            share.survived()
        finally:
            campaign.close()
            mount("umount", "-l", str(base))


class TestFileChangedUnderTheLoader:
    def test_file_truncated_appended_or_deleted_while_it_loads(self, campaign: Campaign, share):
        """A file truncated or appended to mid-load is reloaded whole; one deleted mid-load is not moved."""
        d = campaign.daemon("change", workers=3, ingest_batch_size=2000)
        d.wait_healthy()
        rows = 60_000
        trunc = campaign.drop_tagged("noref", "append", "trunc", 0, rows, payload_bytes=40)
        grow = campaign.drop_tagged("noref", "append", "grow", 1, rows, payload_bytes=40)
        gone = campaign.drop_tagged("noref", "append", "gone", 2, rows, payload_bytes=40)
        keep = rows // 2

        def truncate() -> None:
            # At a line boundary, so that the file stays valid and only its content moves.
            with trunc.path.open("rb+") as f:
                header = f.readline()
                lines = sum(len(",".join(r).encode()) + 1 for r in tagged_rows(trunc.version, keep, 40))
                f.truncate(len(header) + lines)

        def append() -> None:
            with grow.path.open("a") as f:
                f.writelines(",".join(r) + "\n" for r in tagged_rows(grow.version, 100, 40))

        changes = {trunc.path.name: truncate, grow.path.name: append, gone.path.name: gone.path.unlink}

        def change_what_loads() -> bool:
            # Each file is changed the moment its load starts, before the loader can finish it.
            for row in campaign.tracking():
                if row["status"] == "processing" and row["file_name"] in changes:
                    changes.pop(row["file_name"])()
            return not changes

        wait_for(change_what_loads, 60, interval=0.005, what="every load started and its file changed")
        share.fault(3)
        for drop, count in ((trunc, keep), (grow, None)):
            tag = drop.version
            if count is None:
                drop.rows = lambda tag=tag: [*tagged_rows(tag, rows, 40), *tagged_rows(tag, 100, 40)]
            else:
                drop.rows = lambda tag=tag, count=count: tagged_rows(tag, count, 40)
            drop.digest, drop.n_rows = digest_rows(drop.rows())
            drop.sha256 = sha256_of(drop.path)
        gone.expect = "gone"
        campaign.wait_settled(timeout=120)
        outcome = campaign.check([d])
        retried = outcome.statuses["retry"]
        assert retried >= 2, outcome.statuses
        share.note(f"3 files changed mid-load: {retried} attempts abandoned as changed, then reloaded whole")
        share.survived()


class TestFullDisk:
    def test_full_disk_for_the_sqlite_data_folder(self, tmp_path: Path, share):
        """With the data disk full, loads wait (not in error/), the old version stays whole, then all load."""
        with tmpfs(tmp_path / "data", "4m") as data:
            url = f"sqlite:///{data / 'refdata.db'}"
            c = Campaign(tmp_path, url, share)
            try:
                d = c.daemon("full", workers=2, data_dir=data, min_free_disk_mb=1)
                d.wait_healthy()
                reader = c.reader()
                c.drop_tagged("ref", "fullload", "disk", 0, 2000)
                c.wait_settled()
                filler = data / "filler"
                with filler.open("wb") as f, contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                share.fault()
                c.drop_tagged("ref", "fullload", "disk", 1, 20_000)
                c.drop_tagged("noref", "append", "disk_app", 2, 20_000)
                wait_for(
                    lambda: "database or disk is full" in d.log(), 60, what="a load refused for lack of space"
                )
                body = d.get_json("/readyz")[1]
                assert body["checks"]["disk"]["status"] == "fail", body
                time.sleep(1)
                assert not list((c.folder("ref", "fullload") / "error").iterdir())
                filler.unlink()
                c.wait_settled(timeout=120)
                c.check([d])
                assert reader.reads > 0
                share.survived()
            finally:
                c.close()
