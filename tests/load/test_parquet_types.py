"""Under TYPE_POLICY=infer a Parquet file's own column types define the table (issue 17)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.db.adapter import decimal_precision
from backend.errors import FileRejectedError
from backend.load.evolve import column_type_of
from backend.load.loader import load_file
from backend.load.readers.parquet_types import declared_type
from backend.models import ColumnKind, ColumnType, LoadRequest, LoadType, TypePolicy
from tests.load.test_realworld_loads import policy
from tests.support import export_rows

#: name -> (Arrow array, the logical type the table gets under infer).
COLUMNS: dict[str, tuple[pa.Array, ColumnType]] = {
    "small": (pa.array([1, -7, None], pa.int16()), ColumnType(ColumnKind.INTEGER)),
    "count": (pa.array([5, 6, 7], pa.int64()), ColumnType(ColumnKind.BIGINT)),
    "huge": (pa.array([2**64 - 1, 0, 1], pa.uint64()), ColumnType(ColumnKind.DECIMAL, precision=20)),
    "price": (
        pa.array([Decimal("1.50"), Decimal("-0.05"), Decimal("1000.00")], pa.decimal128(10, 2)),
        ColumnType(ColumnKind.DECIMAL, precision=10, scale=2),
    ),
    # Wider than the headroom every new decimal column gets: declared exactly so.
    "amount": (
        pa.array([Decimal("1.2500"), None, Decimal("-3.0000")], pa.decimal128(24, 4)),
        ColumnType(ColumnKind.DECIMAL, precision=24, scale=4),
    ),
    "day": (
        pa.array([datetime.date(2024, 1, 31), datetime.date(2020, 2, 29), None], pa.date32()),
        ColumnType(ColumnKind.DATE),
    ),
    "at": (
        pa.array(
            [datetime.datetime(2024, 1, 31, 8, 30), None, datetime.datetime(1999, 12, 31)], pa.timestamp("s")
        ),
        ColumnType(ColumnKind.DATETIME),
    ),
    "flag": (pa.array([True, False, None]), ColumnType(ColumnKind.BOOLEAN)),
    # Digits in a string column stay text: the file says they are text (a CSV's would be integer).
    "code": (pa.array(["123", "456", "789"]), ColumnType(ColumnKind.TEXT)),
    # Floats keep the type inferred from their text: all whole here, so integer.
    "ratio": (pa.array([1.0, 2.0, 42.0]), ColumnType(ColumnKind.INTEGER)),
    # A finer timestamp with a fraction in one value only has no single layout: text.
    "stamp": (
        pa.array(
            [datetime.datetime(2024, 1, 1, 8), datetime.datetime(2024, 1, 1, 8, 0, 0, 500000), None],
            pa.timestamp("ms"),
        ),
        ColumnType(ColumnKind.TEXT),
    ),
}


def write_typed(path: Path) -> Path:
    pq.write_table(pa.table({name: array for name, (array, _) in COLUMNS.items()}), path)
    return path


def stored_kinds(db, table: str) -> dict[str, ColumnType]:
    with db.read() as conn:
        live = db.reflect(conn, table, db.catalog.data_schema)
    return {name: column_type_of(live.c[name].type) for name in COLUMNS}


def logical(column_type: ColumnType) -> tuple[ColumnKind, int, int]:
    """Kind, precision and scale as a new column is declared (decimals with the headroom all get)."""
    if column_type.kind is ColumnKind.DECIMAL:
        return column_type.kind, decimal_precision(column_type), column_type.scale
    return column_type.kind, 0, 0


class TestDeclaredTypes:
    @pytest.mark.parametrize(
        ("data_type", "expected"),
        [
            (pa.int32(), ColumnType(ColumnKind.INTEGER)),
            (pa.uint32(), ColumnType(ColumnKind.BIGINT)),
            (pa.decimal128(38, 10), ColumnType(ColumnKind.DECIMAL, precision=38, scale=10)),
            (pa.dictionary(pa.int8(), pa.string()), ColumnType(ColumnKind.TEXT)),
            (pa.float64(), None),
            (pa.decimal256(40, 2), None),
            (pa.timestamp("us"), None),
            (pa.timestamp("s", tz="UTC"), None),
            (pa.time64("us"), None),
        ],
    )
    def test_maps_only_the_types_with_an_exact_counterpart(self, data_type, expected):
        """Integers, decimals up to 38 digits and strings map; floats, wider decimals, zoned or fine
        timestamps and times do not."""
        assert declared_type(data_type) == expected


class TestInferFromTheSchema:
    def test_the_table_takes_the_files_types_and_exports_the_same_text(self, env, tmp_path):
        """Under infer each column gets its Parquet type; the cells export as under text."""
        settings, db = env
        path = write_typed(tmp_path / "typed.parquet")
        load_file(db, settings, LoadRequest(path=path, table="as_text"))
        result = load_file(db, settings, LoadRequest(path=path, type_policy=TypePolicy.INFER))
        kinds = stored_kinds(db, "typed")
        assert {n: logical(t) for n, t in kinds.items()} == {n: logical(t) for n, (_, t) in COLUMNS.items()}
        assert export_rows(db, "typed") == export_rows(db, "as_text")
        assert result.detection.declared_types[0] == ColumnType(ColumnKind.INTEGER)

    def test_the_tables_policy_asks_for_the_same(self, env, tmp_path):
        """`type_policy: infer` in the table's policy file types the columns as the setting does."""
        settings, db = env
        policy(settings, "typed", "type_policy: infer\n")
        load_file(db, settings, LoadRequest(path=write_typed(tmp_path / "typed.parquet")))
        kinds = stored_kinds(db, "typed")
        assert {n: logical(t) for n, t in kinds.items()} == {n: logical(t) for n, (_, t) in COLUMNS.items()}

    def test_values_are_still_checked_against_the_typed_columns(self, env, tmp_path):
        """An append whose integer column holds text is refused by the checker, naming the value."""
        settings, db = env
        first = tmp_path / "codes.parquet"
        pq.write_table(pa.table({"n": pa.array([1, 2], pa.int32())}), first)
        load_file(db, settings, LoadRequest(path=first, type_policy=TypePolicy.INFER))
        bad = tmp_path / "codes_more.parquet"
        pq.write_table(pa.table({"n": pa.array(["3", "three"])}), bad)
        with pytest.raises(FileRejectedError, match="'three'"):
            load_file(db, settings, LoadRequest(path=bad, table="codes", load_type=LoadType.APPEND))
        assert export_rows(db, "codes") == [["n"], ["1"], ["2"]]
