"""SQL expressions more than one database adapter builds the same way."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.models import ColumnType


def literal_sql(conn: Connection, expression: Any) -> str:
    """`expression` as SQL text with its constants inlined (for DDL, which takes no parameters)."""
    return str(expression.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def render_boolean(value: Any, column_type: ColumnType) -> Any:
    true = column_type.true_text or "true"
    false = column_type.false_text or "false"
    return sa.case((value == sa.true(), true), (value == sa.false(), false), else_=sa.null())


def iso_castable(date_format: str) -> bool:
    """Formats every database CASTs from text the same way: ISO dates, optional time."""
    return date_format.startswith("%Y-%m-%d") and "/" not in date_format and "." not in date_format[:8]


def mask_sql(value: Any, length: Any, repeat: Any) -> Any:
    """All but the last four characters as ``*`` (shorter values: all), with the database's own
    length and repeat functions."""
    return sa.case(
        (length > 4, sa.func.concat(repeat("*", length - 4), sa.func.right(value, 4))),
        else_=repeat("*", length),
    )


def keep_empty(column: Any, expression: Any) -> Any:
    """`expression`, but NULL and '' stay as they are."""
    return sa.case((sa.or_(column.is_(None), column == ""), column), else_=expression)
