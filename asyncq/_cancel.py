"""Telling a cancellation of the current task from a CancelledError a library raised."""

from __future__ import annotations

import asyncio

__all__ = ["cancelled_by_caller"]


def cancelled_by_caller() -> bool:
    """True when the current task itself is being cancelled, not when a client library
    (aiormq, whose connection died) or a task's own code raised ``CancelledError``."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
