"""The peers benchmark's own logic, without running a loader: names, commands and the report."""

from __future__ import annotations

from pathlib import Path

from bench.generate import COLUMNS, Generated, Spec
from bench.peer_load import _with_password
from bench.peers import LOADERS, Result, Slot, _type_summary, markdown, ratios

FILE_COLUMNS = [(name, "text") for name, _ in COLUMNS]


def _data(tmp_path: Path) -> Generated:
    return Generated(tmp_path / "f.csv", rows=1000, bytes=100_000, spec=Spec(size_bytes=100_000))


def _result(loader_name: str, seconds: float, data: Generated) -> Result:
    loader = next(loader for loader in LOADERS if loader.name == loader_name)
    result = Result(loader, "sqlite", "100kB", data.rows, data.bytes)
    result.runs.append({"seconds": seconds, "peak_rss_mb": 10.0})
    result.loaded_rows.append(data.rows)
    result.columns = list(FILE_COLUMNS)
    return result


def test_every_sqlite_command_builds_without_a_server(tmp_path: Path) -> None:
    # "sqlite_" table names are reserved by SQLite; the runner prefixes every table.
    data = _data(tmp_path)
    for loader in LOADERS:
        if "sqlite" not in loader.databases:
            continue
        slot = Slot("sqlite", data, f"bench_{loader.name.replace('-', '_')}_r1", tmp_path / loader.name)
        command = loader.command(slot)
        assert command and all(isinstance(part, str) for part in command)
        assert loader.locate(slot).sqlite_file is not None


def test_type_summary_counts_types_and_flags_added_columns_and_order() -> None:
    assert _type_summary(FILE_COLUMNS) == "12 text"
    shuffled = [*reversed(FILE_COLUMNS), ("_dlt_id", "character varying")]
    assert _type_summary(shuffled) == "12 text; +1 own (_dlt_id); column order changed"


def test_ratios_pair_each_loader_with_the_native_loader_of_its_database(tmp_path: Path) -> None:
    data = _data(tmp_path)
    native, slow = _result("native", 1.0, data), _result("csvkit", 400.0, data)
    results = {r.key: r for r in (native, slow)}
    assert ratios(results) == {native.key: 1.0, slow.key: 1 / 400}
    table = markdown(results)
    assert "| 0.003x |" in table  # small ratios keep a significant digit
    assert "| 1.00x |" in table


def test_a_failed_loader_is_reported_not_dropped(tmp_path: Path) -> None:
    data = _data(tmp_path)
    failed = _result("ingestr", 1.0, data)
    failed.runs.clear()
    failed.error = "exit 1: no such | host"
    table = markdown({failed.key: failed})
    assert "failed: exit 1: no such / host" in table


def test_dlt_gets_a_password_only_when_the_uri_has_none() -> None:
    assert _with_password("postgresql://postgres@127.0.0.1:5432/db") == (
        "postgresql://postgres:unused@127.0.0.1:5432/db"
    )
    assert _with_password("postgresql://u:p@h/db") == "postgresql://u:p@h/db"
