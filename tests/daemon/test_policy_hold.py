"""A typo in a table's policy, made while the daemon runs, holds that table's files: never error/."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.daemon.support import Daemon, data_files, drop, query, wait_for

pytestmark = pytest.mark.daemon


def test_files_wait_while_the_policy_is_invalid_and_load_once_it_is_fixed(tmp_path: Path, db_url: str):
    config = tmp_path / "config"
    (config / "tables").mkdir(parents=True)
    d = Daemon(tmp_path, db_url, {"CONFIG_DIR": str(config)}).start()
    try:
        d.wait_healthy()
        policy = config / "tables" / "rates.yaml"
        policy.write_text("ragged_rowz: skip\n")  # the typo, after start-up checked the folder
        folder = d.folder("ref", "fullload")
        drop(folder / "rates.csv", "code,rate\nEUR,1.0\n")
        drop(folder / "units.csv", "unit\nkg\n")  # another table is not held up
        wait_for(lambda: data_files(folder, "processed"), 30, what="units.csv processed")

        def held() -> dict:
            return d.get_json("/status")[1].get("held_by_configuration", {})

        wait_for(lambda: "rates" in held(), 30, what="rates held")
        time.sleep(3)  # several more stability windows
        assert (folder / "rates.csv").exists()
        assert not data_files(folder, "error")
        assert "rates.yaml" in held()["rates"] and "ragged_rowz" in held()["rates"]
        assert d.log().count("its policy file is invalid") == 1  # once per change, not per look

        policy.write_text("ragged_rows: skip\n")
        wait_for(lambda: len(data_files(folder, "processed")) == 2, 30, what="rates.csv processed")
        assert query(d.url, d.root, "SELECT code, rate FROM ref.rates") == [("EUR", "1.0")]
        assert held() == {}
        assert "policy file valid again" in d.log()
    finally:
        d.terminate()
