"""The column types a Parquet file declares, where they map exactly onto ours (TYPE_POLICY=infer).

A declared type is used only when every value the reader renders for it (`parquet.text`) is
text the type writes back character for character, so the values still travel as exact strings
and the load's checker (`backend.load.convert`) still checks each one before it is written:

==========================================  ============================================
Arrow type                                   column type
==========================================  ============================================
int8, int16, int32, uint8, uint16            integer
int64, uint32                                bigint
uint64                                       decimal(20, 0) (past bigint's range)
decimal(p, s), 0 <= s <= p <= 38             decimal(p, s) (rendered with its scale)
bool                                         boolean, spelled ``true``/``false``
date32, date64                               date, ``%Y-%m-%d``
timestamp[s] without a time zone             datetime, ``%Y-%m-%d %H:%M:%S``
string, large_string, string_view            text (its length measured as for CSV)
==========================================  ============================================

Everything else has no declared type and keeps the type inferred from its text, as a CSV
column would. That is a choice for floats: the reader writes a double in its shortest exact
form (``0.1``, ``42``, ``1e+21``), which no fixed decimal(p, s) writes back, so a float column is
typed from its values (all whole: integer; one scale throughout: decimal; otherwise text). It is
forced for finer timestamps (ms, us, ns: the fraction is written only as far as it is not zero,
and a datetime column writes back one layout), zoned timestamps and times of day, which our
type model cannot hold exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from backend.detection.types import DEFAULT_FORMATS
from backend.models import ColumnKind, ColumnType

#: Widest decimal every database of ours stores.
_MAX_PRECISION = 38
_INTEGERS = {
    pa.int8(): ColumnKind.INTEGER,
    pa.int16(): ColumnKind.INTEGER,
    pa.int32(): ColumnKind.INTEGER,
    pa.uint8(): ColumnKind.INTEGER,
    pa.uint16(): ColumnKind.INTEGER,
    pa.int64(): ColumnKind.BIGINT,
    pa.uint32(): ColumnKind.BIGINT,
}


def declared_type(data_type: pa.DataType) -> ColumnType | None:
    """Our column type for a stored Arrow type, or None when it has no exact counterpart."""
    if pa.types.is_dictionary(data_type):
        return declared_type(data_type.value_type)
    if data_type in _INTEGERS:
        return ColumnType(_INTEGERS[data_type])
    if data_type == pa.uint64():
        return ColumnType(ColumnKind.DECIMAL, precision=20, scale=0)
    if pa.types.is_decimal(data_type):
        precision, scale = data_type.precision, data_type.scale
        if 0 <= scale <= precision <= _MAX_PRECISION:
            return ColumnType(ColumnKind.DECIMAL, precision=precision, scale=scale)
        return None
    if pa.types.is_boolean(data_type):
        return ColumnType(ColumnKind.BOOLEAN, true_text="true", false_text="false")
    if pa.types.is_date(data_type):
        return ColumnType(ColumnKind.DATE, date_format=DEFAULT_FORMATS[ColumnKind.DATE])
    if pa.types.is_timestamp(data_type) and data_type.unit == "s" and data_type.tz is None:
        return ColumnType(ColumnKind.DATETIME, date_format=DEFAULT_FORMATS[ColumnKind.DATETIME])
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return ColumnType(ColumnKind.TEXT)
    if pa.types.is_string_view(data_type):
        return ColumnType(ColumnKind.TEXT)
    return None


def declared_types(types: Iterable[pa.DataType]) -> tuple[ColumnType | None, ...]:
    """`declared_type` of each column, in column order."""
    return tuple(declared_type(t) for t in types)
