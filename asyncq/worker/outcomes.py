"""What the executor makes of a delivery (:class:`Ack`, :class:`Dead`, :class:`Requeue`,
:class:`RetryLater`) for the settler to carry out, and the texts it keeps of a failure."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

from asyncq.brokers import Delivery, Outgoing, Settlement
from asyncq.records import REJECTED, KeyWrite, ResultRecord
from asyncq.states import TaskState

__all__ = ["MAX_TRACEBACK", "Ack", "Dead", "Outcome", "Requeue", "RetryLater", "describe",
           "rejection"]

#: Characters of a traceback kept in a FAILURE record.
MAX_TRACEBACK = 64 * 1024


@dataclass(slots=True, eq=False)
class Ack(Settlement):
    """Ack, with the result record to write first (if any): passed to the consumer as
    it is, no new object per settled message."""


@dataclass(slots=True, eq=False)
class Dead:
    delivery: Delivery
    reason: str
    task_id: str | None = None
    task: str | None = None


@dataclass(slots=True, eq=False)
class Requeue:
    """Hand back; ``counted`` when the worker failed it (it then counts as a delivery)."""

    delivery: Delivery
    counted: bool = False


@dataclass(slots=True, eq=False)
class RetryLater:
    """Publish ``again`` (the next attempt, delayed), then ack with a RETRY record."""

    delivery: Delivery
    again: Outgoing
    write: KeyWrite


Outcome = Ack | Dead | Requeue | RetryLater


def rejection(dead: Dead) -> ResultRecord:
    """The FAILURE record a handle sees for a dead-lettered message."""
    return ResultRecord(TaskState.FAILURE, None, REJECTED, dead.reason, None, 0, dead.task,
                        time.time())


def describe(exc: BaseException) -> tuple[str, str, str]:
    """Type name, message and traceback text, even for exceptions that cannot print."""
    cls = type(exc)
    module = cls.__module__
    etype = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    try:
        text = str(exc)
    except Exception:
        text = f"<unprintable {etype}>"
    try:
        tb = "".join(traceback.format_exception(exc))
    except Exception:
        tb = f"<traceback unavailable for {etype}>"
    return etype, text, tb[-MAX_TRACEBACK:]
