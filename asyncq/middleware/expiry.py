"""Expiry: a message whose ``expires`` time has passed is not run (``CANCELLED``)."""

from __future__ import annotations

import time

from asyncq.middleware import Job, Middleware, Skip
from asyncq.states import TaskState

__all__ = ["Expiry"]

_EXPIRED = Skip(TaskState.CANCELLED, "Expired", "the task expired before it ran")


class Expiry(Middleware):
    """Skips a task whose ``expires`` (``options(expires=...)``) passed before it ran."""

    def check_run(self, job: Job) -> Skip | None:
        expires = job.message.options.get("expires")
        if expires is None:
            return None
        if isinstance(expires, int | float) and time.time() > expires:
            return _EXPIRED
        return None
