"""The outcome of one run as one tuple: what task events and metrics both keep.

A run observed by :class:`~asyncq.events.monitor.Events` and
:class:`~asyncq.middleware.prometheus.Metrics` (together: ``Observed``) costs the
worker one tuple, appended to their buffers; the event map, the counters and the
histograms are made from it later, in batches, off the run's path. The fields are
:data:`asyncq.events.ROW`, in that order.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from asyncq.middleware import Job, RunResult

__all__ = ["ENQUEUED_AT", "EVENT_TYPES", "MAX_ERROR", "run_row"]

#: The header the producer stamps with the enqueue time (unix seconds), when it has
#: the metrics middleware.
ENQUEUED_AT: Final = "asyncq-enqueued-at"
#: Characters of an error message kept.
MAX_ERROR: Final = 500
#: The event type of each final or retry state (REVOKED: the revoke feature's state).
EVENT_TYPES: Final = {"SUCCESS": "task-succeeded", "FAILURE": "task-failed",
                      "RETRY": "task-retried", "REVOKED": "task-revoked",
                      "CANCELLED": "task-cancelled"}


def run_row(job: Job, result: RunResult, runtime: float | None, worker: str
            ) -> tuple[Any, ...]:
    """``(type, ts, id, task, queue, attempt, state, runtime, error, delay, worker,
    enqueued_at)`` of one run."""
    error = None
    if result.error is not None:
        error = f"{type(result.error).__name__}: {result.error}"[:MAX_ERROR]
    elif result.skipped is not None:
        error = result.skipped.message[:MAX_ERROR]
    message = job.message
    return (EVENT_TYPES.get(result.state, "task-failed"), time.time(), message.id,
            message.task, job.delivery.queue, message.attempt, result.state, runtime, error,
            result.delay, worker, message.headers.get(ENQUEUED_AT))
