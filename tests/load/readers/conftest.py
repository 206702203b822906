"""Files written by each format's own tools, shared by the reader tests."""

from __future__ import annotations

import datetime
import io

import openpyxl
import pytest


def openpyxl_bytes(
    rows: list[list[object]], *, title: str = "Data", extra_sheets: tuple[str, ...] = ()
) -> bytes:
    """An .xlsx written by openpyxl with `rows` on its first sheet."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    for name in extra_sheets:
        workbook.create_sheet(name)["A1"] = name
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def small_xlsx() -> bytes:
    """A two-column workbook with a header row."""
    return openpyxl_bytes([["id", "day"], [1, datetime.date(2024, 1, 31)]])
