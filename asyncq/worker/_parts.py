"""Small parts of the worker: its statistics snapshot and helpers of its loops."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from types import CodeType
from typing import TYPE_CHECKING, Any

from asyncq._cancel import cancelled_by_caller

if TYPE_CHECKING:
    from asyncq.app import App

logger = logging.getLogger("asyncq.worker")


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """A snapshot from :meth:`Worker.statistics`."""

    running: int
    buffered: int
    held: int
    settled: int
    stopping: bool


async def _quietly(what: str, step: Awaitable[None]) -> None:
    """Run a best-effort step; its failure is logged and the worker goes on.

    A ``CancelledError`` that a client library raised (its connection died), rather
    than a cancellation of this task, is such a failure too.
    """
    try:
        await step
    except asyncio.CancelledError:
        if cancelled_by_caller():
            raise
        logger.warning("could not %s: the connection closed", what)
    except Exception as exc:
        logger.warning("could not %s: %s", what, exc)


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            logger.error("worker loop failed: %r", result)


def _task_codes(app: App) -> dict[CodeType, str]:
    return {inspect.unwrap(task.fn).__code__: name for name, task in app.tasks.items()
            if hasattr(inspect.unwrap(task.fn), "__code__")}


def _default_queues(app: App) -> list[str]:
    queues = {app.queue_for(task) for task in app.tasks.values()}
    return sorted(queues or {app.default_queue})
