"""The statuses of a tracking row: one attempt to load one file."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Where an attempt stands. `PROCESSING` is the only status that is not final."""

    PROCESSING = "processing"
    LOADED = "loaded"
    DUPLICATE = "duplicate"
    ERROR = "error"
    CANCELLED = "cancelled"
    #: The owner died, or gave up; the file is loaded again when found.
    INTERRUPTED = "interrupted"
    #: A transient failure (database down, file changed); the file stays and is tried again.
    RETRY = "retry"

    @classmethod
    def final(cls) -> tuple[Status, ...]:
        return tuple(s for s in cls if s is not cls.PROCESSING)

    @classmethod
    def settled(cls) -> tuple[str, ...]:
        """Final statuses whose file went (or goes) to processed/ or error/."""
        return (cls.LOADED.value, cls.DUPLICATE.value, cls.ERROR.value, cls.CANCELLED.value)
