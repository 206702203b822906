"""What values that do not fit their typed columns mean for a load: redefine, widen, or refuse."""

from __future__ import annotations

from typing import IO

import structlog

from backend.db.engine import Database
from backend.errors import RowError
from backend.load.convert import Misfit, describe
from backend.load.csv_python import line_numbers
from backend.load.plan import SchemaPlan, with_misfits
from backend.models import Detection, LoadRequest
from backend.policies import TablePolicy, TypeMismatch
from backend.quality.sensitive import redact

log = structlog.get_logger(__name__)


def settle_misfits(
    plan: SchemaPlan,
    misfits: dict[str, Misfit],
    policy: TablePolicy,
    request: LoadRequest,
    raw: IO[bytes],
    detection: Detection,
    headers: tuple[str, ...],
    db: Database,
) -> SchemaPlan:
    """Decide what values that do not fit their typed columns mean for this load.

    A fullload under ``schema_evolution: replace`` redefines the table from the file; under
    ``type_mismatch: widen_to_text`` the columns become text; otherwise the file is refused,
    naming the line, the column and the value (masked when the column is sensitive).

    Raises:
        RowError: the file is refused; nothing was published.
    """
    if plan.evolution is not None and plan.evolution.may_redefine:
        return with_misfits(plan, list(misfits), widen=False)  # type: ignore[return-value]
    if policy.type_mismatch is TypeMismatch.WIDEN_TO_TEXT:
        log.info("widening columns to text", file=request.path.name, table=plan.table, columns=list(misfits))
        return with_misfits(plan, list(misfits), widen=True)  # type: ignore[return-value]
    rows = sorted({row for m in misfits.values() for row, _ in m.examples})
    # Only plain CSV is read again for line numbers; other formats (a sheet, JSON, a compressed
    # stream) name the data row by its position (issue 17).
    plain = detection.format == "csv" and detection.compression is None
    label = "line" if plain else "row"
    lines = (
        line_numbers(raw, detection, rows, decode_errors=db.settings.decode_errors)
        if plain
        else {r: r for r in rows}
    )
    header_of = dict(zip(plan.file_columns, headers, strict=False))
    schema = db.catalog.data_schema
    parts = []
    for name, misfit in misfits.items():
        shown = [
            f"{label} {lines.get(row, '?')} {redact(policy, name, value)!r}" for row, value in misfit.examples
        ]
        more = f" and {misfit.count - len(shown)} more" if misfit.count > len(shown) else ""
        parts.append(
            f"column {header_of.get(name, name)!r} ({schema}.{plan.table}.{name}) takes "
            f"{describe(misfit.column_type)}, not {', '.join(shown)}{more}"
        )
    first_row, first_value = next(iter(misfits.values())).examples[0]
    first = next(iter(misfits))
    raise RowError(
        f"{request.path.name}: {label} {lines.get(first_row, '?')}, column {header_of.get(first, first)!r}: "
        f"{redact(policy, first, first_value)!r} does not fit; "
        + "; ".join(parts)
        + f". Nothing was loaded: fix the file, or set type_mismatch: widen_to_text in "
        f"config/tables/{plan.table}.yaml to turn such columns into text",
        path=request.path,
        rows=tuple(lines.get(r, r) for r in rows),
        details={"misfits": {n: m.count for n, m in misfits.items()}},
    )
