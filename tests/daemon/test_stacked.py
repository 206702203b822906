"""The daemon on a file of stacked tables (issue 16, item 5), as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon.support import Daemon, data_files, drop, query, wait_for

pytestmark = pytest.mark.daemon

STACKED = (
    "Region,Stores,Revenue\nNorth,14,1203400\nSouth,22,2011000\n\n"
    "Store,Region,Staff,Revenue\nN01,North,14,95100\nN02,North,11,78800\nS01,South,19,120400\n"
)


class TestStackedTables:
    def test_stacked_file_lands_in_error_with_a_sidecar_naming_the_blocks(self, tmp_path: Path, db_url: str):
        """Without a policy the file goes to error/; its sidecar gives each block's lines and width."""
        (tmp_path / "config").mkdir()
        daemon = Daemon(tmp_path, db_url, env_overrides={"CONFIG_DIR": str(tmp_path / "config")})
        try:
            daemon.start().wait_healthy()
            folder = daemon.folder("ref", "fullload")
            drop(folder / "stores.csv", STACKED)
            wait_for(lambda: data_files(folder, "error"), 30, what="file in error/")
            moved = data_files(folder, "error")[0]
            sidecar_path = moved.parent / (moved.name + ".error.json")
            wait_for(sidecar_path.exists, 10, what="sidecar")
            sidecar = json.loads(sidecar_path.read_text())
            assert (
                "lines 1-3 (3 columns)" in sidecar["reason"] and "lines 5-8 (4 columns)" in sidecar["reason"]
            )
            assert "stacked_tables" in sidecar["reason"]
            blocks = [(b["first_line"], b["last_line"], b["width"]) for b in sidecar["details"]["blocks"]]
            assert blocks == [(1, 3, 3), (5, 8, 4)]
        finally:
            daemon.terminate()

    def test_policy_loads_one_block_and_the_others_wait_in_error(self, tmp_path: Path, db_url: str):
        """stacked_tables: largest loads the detail block; the summary's records are a rejects file."""
        config = tmp_path / "config"
        (config / "tables").mkdir(parents=True)
        (config / "tables" / "stores.yaml").write_text("stacked_tables: largest\n")
        daemon = Daemon(tmp_path, db_url, env_overrides={"CONFIG_DIR": str(config)})
        try:
            daemon.start().wait_healthy()
            folder = daemon.folder("ref", "fullload")
            drop(folder / "stores.csv", STACKED)
            wait_for(lambda: data_files(folder, "processed"), 30, what="file in processed/")
            moved = data_files(folder, "processed")[0]
            rejects = folder / "error" / (moved.name + ".rejects.csv")
            wait_for(rejects.exists, 10, what="rejects file in error/")
            assert rejects.read_text().splitlines() == [
                "line,fields",
                "1,Region,Stores,Revenue",
                "2,North,14,1203400",
                "3,South,22,2011000",
            ]
            rows = query(daemon.url, daemon.root, "SELECT store FROM ref.stores ORDER BY _row_number")
            assert [r[0] for r in rows] == ["N01", "N02", "S01"]
        finally:
            daemon.terminate()
