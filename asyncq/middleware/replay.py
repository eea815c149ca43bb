"""Replay guard: with signing on, a message whose id already has a final outcome is
not run again.

A signed message is bound to its queue and ages out (:mod:`asyncq.signing`), but
within its maximum age a captured copy put back on the same queue still verifies. This
middleware reads the task's result record before it runs: if an earlier run already
recorded a final outcome (not a rejection, which later runs may replace), the copy is
acked without running and the record is left as it was.

The App adds it when signing is on, for tasks that keep results (a task with
``ignore_result=True`` leaves no record to find, so it is not covered), so the plain
path (no signing) pays nothing. With the RPC result backend a worker cannot read
records, so it guards nothing there (docs/guides/security.md).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from asyncq.errors import DecodeError
from asyncq.middleware import Job, Middleware, Skip
from asyncq.records import REJECTED
from asyncq.states import TaskState

__all__ = ["REPLAYED", "ReplayGuard"]

logger = logging.getLogger("asyncq.middleware.replay")

#: ``error_type`` of the (never stored: the first record stays) skip of a replay.
REPLAYED: Final = "asyncq.Replayed"
_SKIP: Final = Skip(TaskState.FAILURE, REPLAYED,
                    "this message id already has a final outcome; the copy did not run")


class ReplayGuard(Middleware):
    """Skip a delivery whose task id already has a final, non-rejection record."""

    def applies_to(self, task: Any) -> bool:
        return not task.config.ignore_result

    async def before_run(self, job: Job) -> Skip | None:
        if job.delivery.delivery_count > 1:
            return None  # the worker itself checked this redelivery's record
        try:
            record = await job.app.backend.get(job.id)
        except DecodeError:  # a forged record does not stop the genuine run
            return None
        if record is None or not record.ready or record.error_type == REJECTED:
            return None
        logger.warning("%s[%s] already has a final outcome: not running the copy "
                       "delivered on %r (a replay?)", job.name[:200], job.id, job.queue[:200])
        return _SKIP
