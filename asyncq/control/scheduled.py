"""``SCHEDULED`` records for calls with a countdown or an eta.

Written by the producer right after the broker has the message, only for such calls (a
plain call pays nothing). The record is not final, so the task's own records replace it
(and it never replaces a settled one). It lives until the eta plus the result TTL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asyncq.records import ResultRecord
from asyncq.states import TaskState

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.brokers import Outgoing
    from asyncq.result import TaskResult

__all__ = ["mark_scheduled"]


async def mark_scheduled(app: App, sent: Sequence[tuple[Outgoing, TaskResult[Any]]]) -> None:
    """Store a SCHEDULED record, with its eta, for each sent message that has an eta."""
    backend = app.backend
    now = time.time()
    writes = []
    for outgoing, handle in sent:
        task = app.tasks.get(handle.task or "")
        if outgoing.eta is None or (task is not None and task.config.ignore_result):
            continue
        write = backend.key_write(outgoing.id, ResultRecord(
            TaskState.SCHEDULED, task=handle.task, eta=outgoing.eta))
        ahead = outgoing.eta - now
        if ahead > 0:  # (an eta past keeps the record's own TTL)
            write.ttl_ms += int(ahead * 1000)
        writes.append(write)
    await backend.store_writes(writes)
