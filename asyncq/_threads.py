"""Sync ``def`` tasks: each call runs in a thread of the worker's bounded pool.

A worker opens one :class:`~concurrent.futures.ThreadPoolExecutor` for its sync tasks
(:func:`task_threads`) and publishes it in a context variable that its task handlers
inherit; outside a worker (``await task(...)`` in your own code) the loop's default
executor is used. The call runs in a copy of the caller's context, so
``current_request()`` works inside a sync task too.

A thread cannot be interrupted: when a sync task's time limit cancels the call, the
worker stops waiting (the outcome is recorded, the run slot freed) while the thread
runs on to the end of the function, its return value discarded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from asyncq.task import Task

__all__ = ["in_thread", "pool_size", "task_threads"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("asyncq.worker")

_pool: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar(
    "asyncq_task_threads", default=None)


def pool_size(threads: int | None, concurrency: int) -> int:
    """``threads``, checked, or ``min(32, concurrency)`` when it is None."""
    if threads is None:
        return max(1, min(32, concurrency))
    if threads < 1:
        raise ValueError("threads must be at least 1")
    return threads


def in_thread(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """A coroutine function that runs ``fn`` in the worker's task thread pool."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        try:
            return await loop.run_in_executor(_pool.get(), call)
        except asyncio.CancelledError:
            logger.warning("%s: a sync task cannot be interrupted; its thread runs on to "
                           "the end, its result discarded", getattr(fn, "__qualname__", fn))
            raise

    return run


@contextmanager
def task_threads(size: int, tasks: Iterable[Task[..., Any]]) -> Iterator[None]:
    """A pool of ``size`` threads for the sync ones among ``tasks``, used by calls made
    inside the block (no pool when none is sync)."""
    if not any(task.is_sync for task in tasks):
        yield
        return
    pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="asyncq-task")
    token = _pool.set(pool)
    try:
        yield
    finally:
        _pool.reset(token)
        pool.shutdown(wait=False, cancel_futures=True)
