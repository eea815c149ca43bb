"""The outcome of one run as one tuple: what task events and metrics both keep.

The worker appends one :data:`~asyncq.middleware.OutcomeRow` per outcome to an
observer's deque (:attr:`~asyncq.middleware.Middleware.outcomes`); :func:`drain` turns
those into outcome rows in a batch, off the run's path: the event's fields, which the
event stream sends as they are and the metrics fold into counters and histograms. The
fields are :data:`asyncq.events.ROW`, in that order.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from asyncq.middleware import OutcomeRow

__all__ = ["ENQUEUED_AT", "EVENT_TYPES", "MAX_ERROR", "drain"]

#: The header the producer stamps with the enqueue time (unix seconds), when it has
#: the metrics middleware.
ENQUEUED_AT: Final = "asyncq-enqueued-at"
#: Characters of an error message kept.
MAX_ERROR: Final = 500
#: The event type of each final or retry state (REVOKED: the revoke feature's state).
EVENT_TYPES: Final = {"SUCCESS": "task-succeeded", "FAILURE": "task-failed",
                      "RETRY": "task-retried", "REVOKED": "task-revoked",
                      "CANCELLED": "task-cancelled"}


def drain(outcomes: deque[OutcomeRow], worker: str) -> list[tuple[Any, ...]]:
    """Take every outcome waiting in ``outcomes`` (from any thread) as ``(type, ts, id,
    task, queue, attempt, state, runtime, error, delay, worker, enqueued_at)`` rows."""
    types = EVENT_TYPES
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    while outcomes:
        try:
            task_id, task, queue, attempt, sent, state, runtime, ts, error, delay = \
                outcomes.popleft()
        except IndexError:  # another thread took the last one
            break
        append((types.get(state, "task-failed"), ts, task_id, task, queue, attempt, state,
                runtime, error, delay, worker, sent))
    return rows
