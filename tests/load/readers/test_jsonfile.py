"""JSON and NDJSON reader: flattening, exact scalars, refusals with positions, bounded memory."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys

import pytest

from backend.errors import EmptyFileError, FileChangedError, HeaderError
from backend.load.readers.compressed import open_decompressed, reopen_decompressed
from backend.load.readers.errors import DamagedFileError, JsonShapeError, TruncatedFileError
from backend.load.readers.formats import Compression
from backend.load.readers.jsonfile import iter_json_batches, json_columns

RECORDS = [
    {
        "id": 1,
        "name": "Zoë",
        "price": 1.5,
        "ok": True,
        "address": {"city": "Paris", "zip": "07500"},
        "tags": ["a", 1],
    },
    {"id": 2, "name": "", "price": None, "ok": False, "address": {"city": "Rome"}},
    {"id": 3, "extra": "only here", "address": {"zip": "00100", "geo": {"lat": 41.9}}},
]
EXPECTED = {
    "id": ["1", "2", "3"],
    "name": ["Zoë", "", None],
    "price": ["1.5", None, None],
    "ok": ["true", "false", None],
    "address.city": ["Paris", "Rome", None],
    "address.zip": ["07500", None, "00100"],
    "tags": ['["a",1]', None, None],
    "extra": [None, None, "only here"],
    "address.geo.lat": [None, None, "41.9"],
}


def as_json(records) -> bytes:
    return json.dumps(records, ensure_ascii=False).encode()


def as_ndjson(records) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def read(data: bytes, *, ndjson: bool, batch_rows: int = 1000):
    batches = list(
        iter_json_batches(
            io.BytesIO(data), lambda: io.BytesIO(data), name="f.json", ndjson=ndjson, batch_rows=batch_rows
        )
    )
    return batches


def table(data: bytes, *, ndjson: bool) -> dict[str, list]:
    columns: dict[str, list] = {}
    for batch in read(data, ndjson=ndjson):
        for name, values in batch.to_pydict().items():
            columns.setdefault(name, []).extend(values)
    return columns


class TestFlattening:
    @pytest.mark.parametrize("ndjson", [False, True])
    def test_records_written_by_the_json_module_read_back_cell_for_cell(self, ndjson):
        """Nested keys are dotted columns in first-appearance order, arrays JSON text, missing keys null."""
        data = as_ndjson(RECORDS) if ndjson else as_json(RECORDS)
        result = table(data, ndjson=ndjson)
        assert list(result) == list(EXPECTED)
        assert result == EXPECTED

    def test_every_column_is_a_string_column(self):
        """The batch schema holds only string columns, whatever the JSON types."""
        (batch,) = read(as_json(RECORDS), ndjson=False)
        assert {str(field.type) for field in batch.schema} == {"string"}

    def test_mixed_types_under_one_key_load_as_text(self):
        """Numbers, strings, booleans, arrays and objects under one key all load as their text."""
        rows = [{"k": 1}, {"k": "one"}, {"k": True}, {"k": None}, {"k": [1, 2]}, {"k": {"x": 1}}]
        assert table(as_ndjson(rows), ndjson=True) == {"k": ["1", "one", "true", None, "[1,2]", '{"x":1}']}

    def test_object_that_is_sometimes_a_scalar_is_not_flattened(self):
        """A key holding an object in one row and a string in another loads whole, as JSON text."""
        rows = [{"a": {"b": 1, "c": [True]}}, {"a": "flat"}]
        assert table(as_json(rows), ndjson=False) == {"a": ['{"b":1,"c":[true]}', "flat"]}

    def test_null_object_leaves_its_children_null(self):
        """A null where other rows hold an object is a missing value for each child column."""
        rows = [{"a": {"b": 1}}, {"a": None}, {"a": {}}]
        assert table(as_json(rows), ndjson=False) == {"a.b": ["1", None, None]}

    def test_key_that_is_always_an_empty_object_is_one_column(self):
        """A key that only ever holds {} is kept as the text {}."""
        assert table(as_json([{"a": {}, "b": 1}]), ndjson=False) == {"a": ["{}"], "b": ["1"]}

    def test_numbers_keep_digits_and_scale_and_exponents_are_written_out(self):
        """1.50 stays 1.50, big integers keep every digit, 1e-05 is 0.00001, -0.0 stays -0.0."""
        data = b'[{"a": 1.50, "b": 123456789012345678901234567890, "c": 1e-05, "d": -0.0, "e": 2.5E3}]'
        assert table(data, ndjson=False) == {
            "a": ["1.50"],
            "b": ["123456789012345678901234567890"],
            "c": ["0.00001"],
            "d": ["-0.0"],
            "e": ["2500"],
        }

    def test_ndjson_and_json_render_numbers_the_same(self):
        """The same values give the same cells through the json module and through ijson."""
        rows = [{"x": 0.1, "y": 1e-07, "z": [2.50, {"w": 3}]}]
        assert table(as_ndjson(rows), ndjson=True) == table(as_json(rows), ndjson=False)

    def test_keys_that_flatten_to_the_same_name_are_refused(self):
        """A literal "a.b" key and a nested a -> b clash and are refused naming both."""
        with pytest.raises(HeaderError, match=r"'a\.b'"):
            read(as_json([{"a.b": 1}, {"a": {"b": 2}}]), ndjson=False)

    def test_batches_are_bounded_by_batch_rows(self):
        """Rows are cut into batches of at most batch_rows."""
        data = as_ndjson([{"i": i} for i in range(5)])
        assert [b.num_rows for b in read(data, ndjson=True, batch_rows=2)] == [2, 2, 1]

    def test_blank_lines_and_a_bom_are_accepted(self):
        """A UTF-8 BOM, blank lines and CRLF line ends do not disturb NDJSON."""
        data = b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"a": 2}\r\n'
        assert table(data, ndjson=True) == {"a": ["1", "2"]}

    def test_columns_are_reported_for_detect(self):
        """json_columns lists the flattened columns in one pass."""
        assert json_columns(io.BytesIO(as_json(RECORDS)), name="f.json", ndjson=False) == list(EXPECTED)

    def test_gzip_json_reads_through_the_decompressing_reopen(self):
        """A .json.gz is read twice through open_decompressed and reopen_decompressed."""
        payload = gzip.compress(as_json(RECORDS))
        first = open_decompressed(io.BytesIO(payload), Compression.GZIP, name="f.json.gz").stream
        again = reopen_decompressed(lambda: io.BytesIO(payload), Compression.GZIP, name="f.json.gz")
        (batch,) = iter_json_batches(first, again, name="f.json.gz", ndjson=False)
        assert batch.to_pydict() == EXPECTED


class TestRefusals:
    @pytest.mark.parametrize(("data", "what"), [(b"42", "no array"), (b'{"a": [{"b": 1}]}', "an object")])
    def test_json_that_is_not_an_array_is_refused(self, data, what):
        """A top-level scalar or object is refused with what was found."""
        with pytest.raises(JsonShapeError, match=what):
            read(data, ndjson=False)

    def test_top_level_object_with_an_item_key_is_still_refused(self):
        """An object whose key is "item" does not pass for an array."""
        with pytest.raises(JsonShapeError, match="an object"):
            read(b'{"item": {"a": 1}}', ndjson=False)

    def test_array_element_that_is_not_an_object_is_refused_with_its_position(self):
        """The third element being a number is refused as element 3."""
        with pytest.raises(JsonShapeError, match="element 3") as raised:
            read(b'[{"a": 1}, {"a": 2}, 7]', ndjson=False)
        assert raised.value.rows == (3,)

    def test_ndjson_line_that_is_not_an_object_is_refused_with_its_line_number(self):
        """A line holding an array is refused with its line number (blank lines counted)."""
        with pytest.raises(JsonShapeError, match="line 3") as raised:
            read(b'{"a": 1}\n\n[1, 2]\n', ndjson=True)
        assert raised.value.rows == (3,)

    def test_invalid_ndjson_line_is_refused_with_its_line_number(self):
        """A line that is not valid JSON names its line."""
        with pytest.raises(JsonShapeError, match="line 2 is not valid JSON"):
            read(b'{"a": 1}\n{"a": tru}\n', ndjson=True)

    def test_nan_is_refused_as_not_json(self):
        """NaN is not JSON, even though Python's json module would accept it."""
        with pytest.raises(JsonShapeError, match="NaN"):
            read(b'{"a": NaN}\n', ndjson=True)

    def test_truncated_array_is_refused_before_any_batch(self):
        """An array cut short is refused in the first pass: no batch is ever produced."""
        batches = []
        with pytest.raises(TruncatedFileError, match="incomplete"):
            batches.extend(
                iter_json_batches(io.BytesIO(b'[{"a": 1}, {"a": 2'), io.BytesIO, name="f", ndjson=False)
            )
        assert batches == []

    def test_garbage_after_the_array_is_refused(self):
        """Bytes after the closing bracket make the file invalid."""
        with pytest.raises(DamagedFileError, match="trailing garbage"):
            read(b'[{"a": 1}] [', ndjson=False)

    def test_utf16_json_is_refused(self):
        """JSON must be UTF-8; a UTF-16 file is refused with what to do."""
        with pytest.raises(DamagedFileError, match="UTF-8"):
            read('[{"a": 1}]'.encode("utf-16"), ndjson=False)

    def test_empty_array_is_an_empty_file(self):
        """An array with no objects has nothing to load."""
        with pytest.raises(EmptyFileError):
            read(b"[]", ndjson=False)

    def test_file_changing_between_passes_is_retried(self):
        """Different content on the second pass raises the retryable FileChangedError."""
        first, second = as_ndjson([{"a": 1}]), as_ndjson([{"b": 1}])
        with pytest.raises(FileChangedError):
            list(iter_json_batches(io.BytesIO(first), lambda: io.BytesIO(second), name="f", ndjson=True))


MEASURE = """
import io, sys
from backend.load.readers.jsonfile import iter_json_batches
path, ndjson = sys.argv[1], sys.argv[2] == "1"
rows = sum(b.num_rows for b in iter_json_batches(open(path, "rb"), lambda: open(path, "rb"), name="big",
                                                   ndjson=ndjson, batch_rows=10000))
# VmHWM, not ru_maxrss: the latter includes the RSS of the (large) test process forked before exec.
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
print(rows, int(peak) // 1024)
"""


def measure(path, *, ndjson: bool) -> tuple[int, int]:
    """Rows read and peak RSS (MB) of a fresh process reading `path`."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), "1" if ndjson else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows, peak = map(int, out.stdout.split())
    return rows, peak


class TestLargeSingleLines:
    def test_minified_100_mb_array_streams_in_bounded_memory(self, tmp_path):
        """A 100 MB JSON array on one line is read with memory far below its size."""
        path = tmp_path / "one_line.json"
        record = json.dumps({"id": 0, "text": "x" * 1000, "nested": {"a": 1}})
        count = 100 * 1024 * 1024 // len(record)
        with path.open("w") as f:
            f.write("[" + ",".join([record] * count) + "]")
        rows, peak_mb = measure(path, ndjson=False)
        assert rows == count
        assert peak_mb < 200  # pyarrow alone takes ~140 MB once it converts a first array

    def test_100_mb_ndjson_line_costs_about_its_object(self, tmp_path):
        """One 100 MB NDJSON line is parsed by ijson, not copied several times: peak < 4x the line."""
        path = tmp_path / "one_row.ndjson"
        with path.open("w") as f:
            f.write(json.dumps({"id": 1, "blob": "y" * (100 * 1024 * 1024)}) + "\n" + '{"id": 2}\n')
        rows, peak_mb = measure(path, ndjson=True)
        assert rows == 2
        assert peak_mb < 400
