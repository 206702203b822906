"""What one load of one file carries from stage to stage: the context and an attempt's result."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from backend.config import Settings
from backend.db.engine import Database
from backend.load.csv_python import Run
from backend.load.plan import SchemaPlan
from backend.load.publish import Published
from backend.models import Detection, LoadRequest, Record, StageResult, TypePolicy
from backend.policies import TablePolicy


class CancelCheck(Protocol):
    """Raises CancelledError when an operator asked to stop load `tracking_id`.

    Called between batches (it may look at the database only now and then), and with `final`
    immediately before the publish transaction and inside it just before its commit (it must
    look then: a cancel that lands while the file is written is never published). At those two
    the loader passes `requested`, the row's cancel flag as the load's own transaction reads it.
    """

    def __call__(self, tracking_id: int, *, final: bool = False, requested: bool | None = None) -> None: ...


@dataclass(frozen=True)
class LoadContext:
    """Everything one load of one file knows before it writes a row."""

    db: Database
    settings: Settings
    request: LoadRequest
    tracking_id: int
    raw: IO[bytes]
    before: Any  # os.stat_result of the opened file
    detection: Detection
    table: str
    columns: tuple[str, ...]
    headers: tuple[str, ...]
    policy: TablePolicy
    check_cancel: CancelCheck | None = None
    #: After each batch: (rows written so far, estimated rows or None); the CLI's progress bar.
    on_progress: Callable[[int, int | None], None] | None = None
    extra_tracking: dict[str, Any] = field(default_factory=dict)
    rejects_path: Any = None
    #: The file's rows for a format other than plain CSV (issue 17): given the stream to read
    #: (hashed in `_write`), the same runs and records `iter_runs` yields. None: read as CSV.
    records: Callable[[IO[bytes]], Iterable[Run | Record]] | None = None
    #: Why the Arrow reader gave this load up (then every later attempt reads in Python).
    arrow_refused: list[str] = field(default_factory=list)

    @property
    def type_policy(self) -> TypePolicy:
        # Precedence: the operator's flag, then the table's policy file, then the global setting.
        return self.request.type_policy or self.policy.type_policy or self.settings.type_policy


@dataclass(frozen=True, slots=True)
class Outcome:
    """A published attempt."""

    staged: StageResult
    published: Published


@dataclass(frozen=True, slots=True)
class Again:
    """The attempt found values that do not fit; load once more under this plan."""

    plan: SchemaPlan
