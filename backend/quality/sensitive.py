"""Spot columns holding personal or payment data, and hash or mask them in the staging table.

Detection looks at a bounded sample of each column's non-empty values (the profile keeps the
first few thousand): a column is flagged with a kind when at least 80 % of its sampled values
look like one: e-mail address, phone number (a leading ``+`` or separators, 7-15 digits, never
a plain number or a date), payment card number (13-19 digits passing the Luhn check), national
id (US SSN ``123-45-6789``, UK National Insurance ``AB123456C``) or IBAN (mod-97 check).

Protection happens in the staging table, after validation and before publish, so the live table
and bkp never hold the clear values: ``hash`` stores the SHA-256 of the UTF-8 value as 64 lower-case
hex digits (unsalted, so equal values still join; low-entropy values such as phone numbers can be
recovered by brute force, prefer ``refuse`` when that matters); ``mask`` keeps the last four
characters and replaces the others with ``*``. SQLite uses Python functions registered on every
connection; PostgreSQL 11+ and SQL Server use built-in functions (SQL Server needs
2019+ for the UTF-8 collation that makes its hash equal to the others').
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.db.engine import Database
from backend.detection.types import value_kind
from backend.masking import mask_value
from backend.models import ColumnKind
from backend.policies import SensitiveAction, TablePolicy

_PROTECTED = frozenset({SensitiveAction.HASH, SensitiveAction.MASK, SensitiveAction.REFUSE})

#: Share of a column's sampled values that must look sensitive for the column to be flagged.
FLAG_SHARE = 0.8

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?[0-9() .-]{7,24}")
_PHONE_SEPARATOR = re.compile(r"[+() -]")
_CARD = re.compile(r"[0-9]{4}(?:[ -]?[0-9]{2,4}){2,4}")
_SSN = re.compile(r"(?!000|666|9[0-9]{2})[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}")
_NINO = re.compile(
    r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]"
)
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_NON_DIGIT = re.compile(r"[^0-9]")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string (payment card numbers carry one)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces."""
    moved = text[4:] + text[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def kind_of_value(value: str) -> str | None:
    """The sensitive kind `value` looks like, or None."""
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if "@" in text:
        return "email" if _EMAIL.fullmatch(text) else None
    compact = text.replace(" ", "").replace("-", "")
    if compact[:2].isalpha() and _IBAN.fullmatch(compact.upper()) and iban_ok(compact.upper()):
        return "iban"
    if _SSN.fullmatch(text) or _NINO.fullmatch(text.upper()):
        return "national_id"
    if compact.isdigit() and 13 <= len(compact) <= 19 and _CARD.fullmatch(text) and luhn_ok(compact):
        return "payment_card"
    if _PHONE.fullmatch(text) and _PHONE_SEPARATOR.search(text):
        digits = len(_NON_DIGIT.sub("", text))
        if 7 <= digits <= 15 and value_kind(text) is ColumnKind.TEXT:
            return "phone"
    return None


def classify(values: Sequence[str]) -> str | None:
    """The kind a column's sampled values show in at least FLAG_SHARE of them, or None."""
    if not values:
        return None
    counts: dict[str, int] = {}
    for value in values:
        kind = kind_of_value(value)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return None
    kind, hits = max(counts.items(), key=lambda item: item[1])
    return kind if hits >= FLAG_SHARE * len(values) else None


def redact(policy: TablePolicy, column: str, value: str) -> str:
    """`value` as it may appear in a message, a sidecar, a log or an event: masked when the
    table's policy protects the column (hash, mask or refuse), as it is otherwise."""
    if policy.sensitive_columns.get(column) in _PROTECTED:
        return mask_value(value) or ""
    return value


def redact_row(policy: TablePolicy, columns: Sequence[str]) -> Callable[[list[str]], list[str]] | None:
    """A function masking a rejected (ragged) row's protected values, or None if nothing is protected.

    A ragged row's fields may not line up with the header, so a field is masked when it stands
    where a protected column would, or when it looks like personal or payment data itself.
    """
    protected = {i for i, c in enumerate(columns) if policy.sensitive_columns.get(c) in _PROTECTED}
    if not protected:
        return None

    def mask(values: list[str]) -> list[str]:
        return [
            (mask_value(v) or "") if i in protected or kind_of_value(v) is not None else v
            for i, v in enumerate(values)
        ]

    return mask


def protect_staged(
    conn: Connection, db: Database, target: sa.Table, load_id: int, actions: dict[str, str]
) -> None:
    """Replace this load's values of each column in `actions` ({column: "hash" | "mask"}).

    Runs before publish, on rows no reader sees yet; a column typed from the data (card numbers
    look like integers) becomes text first, since a hash or a mask is text.
    """
    from backend.load.evolve import kind_of, rendered_values
    from backend.models import ColumnKind, ColumnType

    if not actions:
        return
    adapter = db.adapter
    for name in actions:
        if kind_of(target.c[name].type) is not ColumnKind.TEXT:
            using = rendered_values(conn, db, target, name)
            adapter.retype_column(conn, target, name, adapter.column_type(ColumnType(length=1 << 30)), using)
            db.forget_table(target.schema or "", target.name)
            refreshed = db.reflect(conn, target.name, target.schema or "")
            target = refreshed if refreshed is not None else target
    values = {name: adapter.protect_text(target.c[name], action) for name, action in actions.items()}
    conn.execute(sa.update(target).where(target.c._load_id == load_id).values(values))


def flag_columns(samples: Iterable[tuple[str, Sequence[str]]]) -> dict[str, str]:
    """{column: kind} for every column whose sample looks sensitive."""
    flags: dict[str, str] = {}
    for name, values in samples:
        kind = classify(values)
        if kind is not None:
            flags[name] = kind
    return flags
