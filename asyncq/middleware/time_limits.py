"""Time limits: soft and hard limits for one task call.

At the soft limit the task is cancelled: ``asyncio.CancelledError`` is raised inside
it, so ``finally`` blocks and ``except CancelledError`` clean-up run. At the hard
limit the worker stops waiting: the outcome is recorded and the slot freed even if
the coroutine ignores cancellation (it is then abandoned, and logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asyncq.errors import TimeLimitExceeded
from asyncq.middleware import CallNext, Job, Middleware
from asyncq.task import Task

__all__ = ["HARD_GRACE", "TimeLimits", "call_with_limits"]

logger = logging.getLogger("asyncq.worker")

#: Without a soft limit, cancellation happens at the hard limit and clean-up gets this long.
HARD_GRACE = 1.0


class TimeLimits(Middleware):
    """Applies ``timeout`` (hard) and ``soft_timeout`` to tasks that set them."""

    def applies_to(self, task: Task[..., Any]) -> bool:
        return task.config.timeout is not None or task.config.soft_timeout is not None

    async def around_run(self, job: Job, call_next: CallNext) -> Any:
        cfg = job.task.config
        return await call_with_limits(call_next, cfg.soft_timeout, cfg.timeout)


async def call_with_limits(call: Callable[[], Awaitable[Any]], soft: float | None,
                           hard: float | None) -> Any:
    if soft is None and hard is None:
        return await call()
    task = asyncio.ensure_future(call())
    try:
        return await _limit(task, soft, hard)
    except asyncio.CancelledError:
        task.cancel()  # the worker is aborting, or the task raised it: end it either way
        raise


async def _limit(task: asyncio.Future[Any], soft: float | None, hard: float | None) -> Any:
    cancel_at = soft if soft is not None else hard
    assert cancel_at is not None
    done, _ = await asyncio.wait({task}, timeout=cancel_at)
    if done:
        return task.result()
    task.cancel("asyncq: time limit")
    grace = (hard - cancel_at) if hard is not None and soft is not None else HARD_GRACE
    done, _ = await asyncio.wait({task}, timeout=max(grace, 0.0))
    kind = "soft " if soft is not None else ""
    if not done:
        logger.error("a task ignored its cancellation past the hard time limit; abandoned")
        raise TimeLimitExceeded("hard ", hard if hard is not None else cancel_at)
    if not task.cancelled() and task.exception() is None:
        return task.result()  # it finished in time after all
    raise TimeLimitExceeded(kind, cancel_at)
