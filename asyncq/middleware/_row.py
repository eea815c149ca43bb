"""The outcome of one run as plain values in a flat list: what task events and metrics
both keep.

The worker tells an observer (:attr:`~asyncq.middleware.Middleware.outcomes`, a list) a
success as the :data:`SHORT` values of :data:`asyncq.events.SUCCESS_ROW`, but the
message's headers in place of the ``enqueued_at`` stamp (:func:`stamps` reads it in the
batch), appended in one ``list.extend``: no tuple, list or other object the garbage
collector tracks is kept per run (a buffer of tuples made it visit each one, and then
free it). Any other outcome (failed, retried, skipped: few) takes :data:`SHORT` places
too, the full row (:data:`asyncq.events.ROW`, a tuple) first and :data:`PAD` after it,
so the list stays a run of ``SHORT``-long records in the order the worker told them.
:func:`drain` takes them in a batch, off the run's path, as :class:`Successes` (the
success rows between two others as columns, each made by one slice in C) and full rows:
the event stream sends the columns as they are (:mod:`asyncq.events._block`) and the
metrics fold them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from itertools import compress, repeat
from operator import is_not
from typing import Any, Final

__all__ = ["ENQUEUED_AT", "EVENT_TYPES", "MAX_ERROR", "NO_HEADERS", "PAD", "SHORT", "WALL",
           "Successes", "drain", "split", "stamps"]

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
#: The places one outcome takes in an observer's list: a success row's length
#: (:data:`asyncq.events.SUCCESS_ROW`).
SHORT: Final = 8
#: The headers of a record that has none (a full row's last place).
NO_HEADERS: Final[dict[str, Any]] = {}
#: What follows a full row in an observer's list (``(row, *PAD)``: ``SHORT`` places).
PAD: Final = (None,) * (SHORT - 2) + (NO_HEADERS,)


class Successes:
    """Success rows (:data:`asyncq.events.SUCCESS_ROW`) as columns, a list of ``n``
    values each, in the row's order: ``ts, ids, tasks, queues, attempts, runs, workers,
    sent`` (the ``enqueued_at`` stamps)."""

    __slots__ = ("attempts", "ids", "queues", "runs", "sent", "tasks", "ts", "workers")

    def __init__(self, columns: list[list[Any]]) -> None:
        (self.ts, self.ids, self.tasks, self.queues, self.attempts, self.runs, self.workers,
         self.sent) = columns

    @classmethod
    def of_rows(cls, rows: list[Any]) -> Successes:
        """From success rows (tuples)."""
        return cls([list(column) for column in zip(*rows, strict=True)])

    def columns(self) -> list[list[Any]]:
        return [self.ts, self.ids, self.tasks, self.queues, self.attempts, self.runs,
                self.workers, self.sent]

    def __len__(self) -> int:
        return len(self.ids)

    def part(self, start: int, stop: int) -> Successes:
        """The rows from ``start`` to ``stop``."""
        return Successes([column[start:stop] for column in self.columns()])

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """The success rows, as tuples."""
        return zip(*self.columns(), strict=True)

    def __repr__(self) -> str:
        return f"<Successes of {len(self)}>"


def drain(outcomes: list[Any]) -> list[Successes | tuple[Any, ...]]:
    """Take every outcome waiting in an observer's list (from any thread): the success
    rows between two other outcomes as :class:`Successes`, the others as their full rows
    (:data:`asyncq.events.ROW`), in the order told. Takers hold a lock; the columns are
    sliced from the list and the values counted deleted, each one C call, so values the
    worker adds meanwhile stay for the next taker."""
    WALL[0] = time.time() - time.perf_counter()
    with _TAKING:
        n = len(outcomes)
        columns = [outcomes[i:n:SHORT] for i in range(SHORT)]
        del outcomes[:n]
    columns[-1] = stamps(columns[-1])
    return split(columns)


def stamps(headers: list[Any]) -> list[Any]:
    """The :data:`ENQUEUED_AT` stamp (or ``None``) of each message's headers: the worker
    tells a success with its message's headers (a mapping the message holds anyway, and
    ``dict.get`` runs in C here, not as four bytecodes and a call per run)."""
    try:
        return list(map(dict.get, headers, repeat(ENQUEUED_AT)))
    except TypeError:  # a mapping that is not a dict
        return [mapping.get(ENQUEUED_AT) for mapping in headers]


def split(columns: list[list[Any]]) -> list[Successes | tuple[Any, ...]]:
    """An observer's values as columns, as :class:`Successes` and full rows. A
    success's first value is its time, a float; another's is its full row (a tuple)."""
    ts = columns[0]
    if not ts:
        return []
    try:
        sum(ts)  # all floats (in C): all successes
    except TypeError:
        pass
    else:
        return [Successes(columns)]
    every = Successes(columns)
    out: list[Successes | tuple[Any, ...]] = []
    start = 0
    for i in compress(range(len(ts)), map(is_not, map(type, ts), repeat(float))):
        if i > start:
            out.append(every.part(start, i))
        out.append(ts[i])
        start = i + 1
    if start < len(ts):
        out.append(every.part(start, len(ts)))
    return out
