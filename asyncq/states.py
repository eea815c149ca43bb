"""Task states."""

from __future__ import annotations

import enum

__all__ = ["FINAL_STATES", "TaskState"]


class TaskState(enum.StrEnum):
    """Where a task is in its life.

    ``PENDING`` also means "unknown": asyncq does not write a record at enqueue time,
    so an id nobody ever enqueued (or whose result expired) reads as ``PENDING``.
    """

    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"

    @property
    def ready(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED})
