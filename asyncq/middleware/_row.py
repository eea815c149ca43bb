"""The outcome of one run as one tuple: what task events and metrics both keep.

The worker appends one :data:`~asyncq.middleware.OutcomeRow` per outcome to an
observer's deque (:attr:`~asyncq.middleware.Middleware.outcomes`); :func:`drain` takes
them in a batch, off the run's path: the event stream sends them as they are and the
metrics fold them into counters and histograms. The fields are
:data:`asyncq.events.ROW`, in that order.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

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


def drain(outcomes: deque[OutcomeRow]) -> list[OutcomeRow]:
    """Take every outcome row waiting in ``outcomes`` (from any thread). The worker makes
    the rows in their final form (:data:`~asyncq.middleware.OutcomeRow`): nothing is
    done to them here."""
    rows: list[OutcomeRow] = []
    popleft = outcomes.popleft
    for _ in range(len(outcomes)):
        try:
            rows.append(popleft())
        except IndexError:  # another thread took the last ones
            break
    return rows
