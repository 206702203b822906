"""Per-table order, without a daemon: one file of a table at a time, fullloads by date stamp."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from backend.daemon.order import TableOrder, order_key
from backend.daemon.stability import ReadyFile

BASE = Path("/drop")
FULL = BASE / "reference_data_table" / "fullload"
APPEND = BASE / "none_reference_data_table" / "append"


def ready(folder: Path, name: str, mtime: float = 0.0) -> ReadyFile:
    return ReadyFile(path=folder / name, size=1, mtime=mtime)


def order(hold: float = 10.0) -> TableOrder:
    return TableOrder(BASE, 63, hold_seconds=hold)


def names(items: list[ReadyFile]) -> list[str]:
    return [i.path.name for i in items]


def always(_path: Path) -> bool:
    return True


class TestTableOrder:
    def test_fullloads_of_a_table_start_one_at_a_time_oldest_stamp_first(self):
        """Of three fullloads of one table, the oldest stamp starts, the next only once it finished."""
        o = order()
        files = [ready(FULL, f"c_2024-01-0{d}.csv", mtime=10 - d) for d in (3, 1, 2)]
        o.add(files, now=0)
        assert names(o.take(0, [], always)) == ["c_2024-01-01.csv"]
        assert o.take(0, [], always) == []
        o.finished(FULL / "c_2024-01-01.csv")
        assert names(o.take(0, [], always)) == ["c_2024-01-02.csv"]

    def test_different_tables_run_side_by_side(self):
        """Files of different tables are not serialised against each other."""
        o = order()
        o.add([ready(FULL, "a.csv"), ready(FULL, "b.csv")], now=0)
        assert sorted(names(o.take(0, [], always))) == ["a.csv", "b.csv"]

    def test_appends_keep_arrival_order(self):
        """Appends of one table go in the order they became ready, whatever their names."""
        o = order()
        o.add([ready(APPEND, "e_2024-01-09.csv")], now=0)
        o.add([ready(APPEND, "e_2024-01-01.csv")], now=1)
        assert names(o.take(1, [], always)) == ["e_2024-01-09.csv"]
        o.finished(APPEND / "e_2024-01-09.csv")
        assert names(o.take(1, [], always)) == ["e_2024-01-01.csv"]

    def test_a_table_waits_for_a_sibling_still_settling_at_most_the_hold(self):
        """A ready file waits while another file of its table is in its stability window, up to the hold."""
        o = order(hold=5)
        o.add([ready(FULL, "c_2024-01-03.csv")], now=0)
        sibling = [FULL / "c_2024-01-01.csv"]
        assert o.take(1, sibling, always) == []
        assert names(o.take(5, sibling, always)) == ["c_2024-01-03.csv"]

    def test_a_file_that_changed_while_queued_is_dropped(self):
        """A queued file the tracker no longer calls ready (changed, gone) leaves the queue."""
        o = order()
        o.add([ready(FULL, "c.csv")], now=0)
        assert o.take(0, [], lambda _p: False) == [] and o.queued() == 0

    def test_a_changed_file_gives_its_turn_to_the_next_of_its_table(self):
        """When the file whose turn it is changed, the next file of its table goes instead."""
        o = order()
        o.add([ready(APPEND, "e_2024-01-01.csv")], now=0)
        o.add([ready(APPEND, "e_2024-01-02.csv")], now=1)
        changed = APPEND / "e_2024-01-01.csv"
        assert names(o.take(1, [], lambda p: p != changed)) == ["e_2024-01-02.csv"]
        assert o.queued() == 0

    def test_only_the_file_whose_turn_it_is_is_checked(self):
        """Taking the next file of a table asks about that file, not about every file queued."""
        o = order()
        days = [date(2020, 1, 1) + timedelta(days=n) for n in range(500)]
        o.add([ready(APPEND, f"e_{d.isoformat()}.csv") for d in days], now=0)
        asked: list[Path] = []
        taken = o.take(0, [], lambda p: asked.append(p) is None)
        assert names(taken) == ["e_2020-01-01.csv"] and asked == [APPEND / "e_2020-01-01.csv"]

    def test_an_older_stamp_that_changed_leaves_the_turn_to_the_next_stamp(self):
        """Of queued fullloads, a changed oldest stamp is dropped and the next oldest goes."""
        o = order()
        o.add([ready(FULL, f"c_2024-01-0{d}.csv") for d in (3, 1, 2)], now=0)
        changed = FULL / "c_2024-01-01.csv"
        assert names(o.take(0, [], lambda p: p != changed)) == ["c_2024-01-02.csv"]
        assert o.queued() == 1

    def test_files_outside_drop_folders_are_not_ordered(self):
        """A path in no drop folder comes straight back to be dispatched (and ignored there)."""
        o = order()
        stray = ReadyFile(path=Path("/elsewhere/x.csv"), size=1, mtime=0)
        assert o.add([stray], now=0) == [stray] and o.queued() == 0

    def test_the_key_sorts_by_stamp_then_mtime_then_name(self):
        """Date stamp first (names without one first), then mtime, then name."""
        keys = sorted(
            [("x_2024-01-02.csv", 1.0), ("x_2024-01-01.csv", 9.0), ("x.csv", 5.0), ("y_2024-01-01.csv", 2.0)],
            key=lambda k: order_key(*k),
        )
        assert [k[0] for k in keys] == ["x.csv", "y_2024-01-01.csv", "x_2024-01-01.csv", "x_2024-01-02.csv"]
