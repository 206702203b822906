"""Parquet reader: exact text per type, flattened structs, refused types, the file's own schema."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.load.readers.errors import DamagedFileError, TruncatedFileError, UnsupportedColumnError
from backend.load.readers.parquet import ParquetSource


def parquet_bytes(table: pa.Table, **options) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def source(table: pa.Table, **options) -> ParquetSource:
    return ParquetSource(io.BytesIO(parquet_bytes(table, **options)), name="f.parquet")


def read(table: pa.Table, **options) -> dict[str, list]:
    columns: dict[str, list] = {}
    for batch in source(table, **options).iter_batches():
        for name, values in batch.to_pydict().items():
            columns.setdefault(name, []).extend(values)
    return columns


class TestValues:
    def test_each_type_written_by_pyarrow_reads_back_as_exact_text(self):
        """Integers, floats, decimals, booleans, dates, timestamps and times render exactly."""
        table = pa.table(
            {
                "i": pa.array([42, -7, None], pa.int64()),
                "u": pa.array([2**64 - 1, 0, 1], pa.uint64()),
                "f": pa.array([0.1, 42.0, 1e21], pa.float64()),
                "f32": pa.array([0.1, 1.5, None], pa.float32()),
                "d": pa.array([Decimal("1.50"), Decimal("-0.01"), Decimal("0.00")], pa.decimal128(10, 2)),
                "b": pa.array([True, False, None]),
                "day": pa.array([datetime.date(2024, 1, 31)] * 3, pa.date32()),
                "ts": pa.array(
                    [
                        datetime.datetime(2024, 1, 31, 8, 30),
                        datetime.datetime(2024, 1, 31, 8, 30, 0, 123000),
                        datetime.datetime(2024, 1, 31, 8, 30, 0, 5),
                    ],
                    pa.timestamp("us"),
                ),
                "t": pa.array(
                    [datetime.time(8, 30), datetime.time(23, 59, 59, 500000), None], pa.time64("us")
                ),
                "s": pa.array(["007", "", None]),
            }
        )
        assert read(table) == {
            "i": ["42", "-7", None],
            "u": ["18446744073709551615", "0", "1"],
            "f": ["0.1", "42", "1e+21"],
            "f32": ["0.1", "1.5", None],
            "d": ["1.50", "-0.01", "0.00"],
            "b": ["true", "false", None],
            "day": ["2024-01-31"] * 3,
            "ts": ["2024-01-31 08:30:00", "2024-01-31 08:30:00.123", "2024-01-31 08:30:00.000005"],
            "t": ["08:30:00", "23:59:59.5", None],
            "s": ["007", "", None],
        }

    def test_time_zone_aware_timestamps_carry_their_offset(self):
        """A UTC column ends in Z; a zoned column shows local time with an ISO offset."""
        instant = datetime.datetime(2024, 1, 31, 8, 30, tzinfo=datetime.UTC)
        table = pa.table(
            {
                "utc": pa.array([instant], pa.timestamp("ms", tz="UTC")),
                "paris": pa.array([instant], pa.timestamp("s", tz="Europe/Paris")),
            }
        )
        assert read(table) == {"utc": ["2024-01-31 08:30:00Z"], "paris": ["2024-01-31 09:30:00+01:00"]}

    def test_dictionary_and_all_null_columns_read_as_their_values(self):
        """A pandas-style categorical loads as its values; a null-typed column as nulls."""
        table = pa.table({"cat": pa.array(["a", "b", "a"]).dictionary_encode(), "none": pa.nulls(3)})
        assert read(table) == {"cat": ["a", "b", "a"], "none": [None, None, None]}

    def test_column_names_are_kept_as_stored(self):
        """Names with spaces, case and punctuation are not normalised here."""
        assert list(read(pa.table({"Unit Price (€)": [1], "ID": [2]}))) == ["Unit Price (€)", "ID"]

    def test_row_groups_are_read_in_bounded_batches(self):
        """Batches never exceed batch_rows and every row group is read."""
        table = pa.table({"n": list(range(10))})
        opened = source(table, row_group_size=4)
        batches = list(opened.iter_batches(batch_rows=3))
        assert max(b.num_rows for b in batches) <= 3
        assert [v for b in batches for v in b.column(0).to_pylist()] == [str(i) for i in range(10)]
        assert opened.num_rows == 10

    def test_every_output_column_is_a_string_column(self):
        """Whatever the stored types, the batches hold only strings."""
        table = pa.table({"i": [1], "f": [1.5], "d": pa.array([datetime.date(2024, 1, 1)])})
        (batch,) = source(table).iter_batches()
        assert {str(field.type) for field in batch.schema} == {"string"}


class TestNested:
    def test_struct_columns_are_flattened_to_dotted_names(self):
        """A nested struct becomes address.city, address.geo.lat; a null struct nulls its children."""
        address = pa.struct([("city", pa.string()), ("geo", pa.struct([("lat", pa.float64())]))])
        table = pa.table(
            {
                "id": [1, 2, 3],
                "address": pa.array(
                    [{"city": "Paris", "geo": {"lat": 48.85}}, None, {"city": None, "geo": None}], address
                ),
            }
        )
        assert read(table) == {
            "id": ["1", "2", "3"],
            "address.city": ["Paris", None, None],
            "address.geo.lat": ["48.85", None, None],
        }

    def test_schema_and_column_types_are_the_files_own(self):
        """arrow_schema is the stored schema; column_types maps flattened names to stored types."""
        table = pa.table({"p": pa.array([Decimal("1.5")], pa.decimal128(5, 1)), "s": pa.array([{"x": 1}])})
        opened = source(table)
        assert opened.arrow_schema.field("p").type == pa.decimal128(5, 1)
        assert opened.column_types == {"p": pa.decimal128(5, 1), "s.x": pa.int64()}

    @pytest.mark.parametrize(
        ("array", "reason"),
        [
            (pa.array([[1, 2]]), "lists, maps"),
            (pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())), "lists, maps"),
            (pa.array([b"\x00\x01"]), "bytes"),
            (pa.array([datetime.timedelta(seconds=5)]), "durations"),
        ],
    )
    def test_types_without_an_exact_text_form_are_refused_naming_the_column(self, array, reason):
        """Lists, maps, binary and durations are refused with the column and why."""
        with pytest.raises(UnsupportedColumnError, match=rf"column 'bad'.*{reason}"):
            source(pa.table({"ok": [1], "bad": array}))

    def test_list_inside_a_struct_is_refused_by_its_dotted_name(self):
        """A list nested in a struct is named by its flattened path."""
        with pytest.raises(UnsupportedColumnError, match=r"'s\.items'"):
            source(pa.table({"s": pa.array([{"items": [1]}])}))


class TestDamage:
    def test_truncated_file_is_refused_as_incomplete(self):
        """A Parquet file cut before its footer is an incomplete copy."""
        data = parquet_bytes(pa.table({"a": list(range(1000))}))
        with pytest.raises(TruncatedFileError, match="incomplete"):
            ParquetSource(io.BytesIO(data[: len(data) // 2]), name="f.parquet")

    def test_corrupt_data_pages_are_refused_as_damaged(self):
        """Garbage in the data pages fails the read with a damage error, not a crash."""
        data = bytearray(
            parquet_bytes(pa.table({"a": [f"value {i}" for i in range(5000)]}), compression="snappy")
        )
        for at in range(100, 2000):
            data[at] = 0xAB
        opened = ParquetSource(io.BytesIO(bytes(data)), name="f.parquet")
        with pytest.raises(DamagedFileError):
            list(opened.iter_batches())
