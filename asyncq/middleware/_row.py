"""The outcome of one run as one tuple: what task events and metrics both keep.

The worker appends one :data:`~asyncq.middleware.OutcomeRow` per outcome to an
observer's deque (:attr:`~asyncq.middleware.Middleware.outcomes`); :func:`drain` takes
them in a batch, off the run's path: the event stream sends them as they are and the
metrics fold them into counters and histograms. The fields are
:data:`asyncq.events.ROW`, in that order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from itertools import repeat, starmap
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from asyncq.middleware import OutcomeRow

__all__ = ["ENQUEUED_AT", "EVENT_TYPES", "MAX_ERROR", "WALL", "drain", "take"]

T = TypeVar("T")
_TAKING = threading.Lock()

#: The header the producer stamps with the enqueue time (unix seconds), when it has
#: the metrics middleware.
ENQUEUED_AT: Final = "asyncq-enqueued-at"
#: Characters of an error message kept.
MAX_ERROR: Final = 500
#: The event type of each final or retry state (REVOKED: the revoke feature's state).
EVENT_TYPES: Final = {"SUCCESS": "task-succeeded", "FAILURE": "task-failed",
                      "RETRY": "task-retried", "REVOKED": "task-revoked",
                      "CANCELLED": "task-cancelled"}
#: ``time.time() - time.perf_counter()``, refreshed at each batch (:func:`drain`): the
#: worker stamps a row with ``perf_counter() + WALL[0]``, so one clock read gives both
#: the run time and the wall time (the two clocks drift apart by far less than a
#: millisecond between two batches; a step of the wall clock shows from the next one).
WALL: list[float] = [time.time() - time.perf_counter()]


def drain(outcomes: deque[OutcomeRow]) -> list[OutcomeRow]:
    """Take every outcome row waiting in ``outcomes`` (from any thread). The worker makes
    the rows in their final form (:data:`~asyncq.middleware.OutcomeRow`): nothing is
    done to them here."""
    WALL[0] = time.time() - time.perf_counter()
    return take(outcomes)


def take(items: deque[T]) -> list[T]:
    """Pop every item waiting in ``items`` (from any thread), oldest first, in one C loop
    rather than a Python loop per item. Takers hold a lock, so the items counted are
    still there when popped (others only append)."""
    with _TAKING:
        return list(starmap(items.popleft, repeat((), len(items))))
