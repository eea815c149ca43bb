"""Task states."""

from __future__ import annotations

import enum

__all__ = ["FINAL_STATES", "TaskState"]


class TaskState(enum.StrEnum):
    """Where a task is in its life.

    ``PENDING`` also means "unknown": asyncq does not write a record at enqueue time,
    so an id nobody ever enqueued (or whose result expired) reads as ``PENDING``;
    a call with a countdown or eta is recorded ``SCHEDULED`` when it is sent.

    Two final states say the task did not (or did not finish to) run on purpose:
    ``CANCELLED`` when it expired before a worker reached it (``expires``), and
    ``REVOKED`` when someone revoked it (``handle.revoke()``, ``app.revoke(id)``).
    A running task's progress travels in ``STARTED`` records
    (:attr:`~asyncq.ResultRecord.progress`).
    """

    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"
    REVOKED = "REVOKED"

    @property
    def ready(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED,
                          TaskState.REVOKED})
