"""Per-task hooks: ``@app.task(on_success=..., on_failure=..., on_retry=...)``.

Each hook is ``async def hook(request, value)`` (success), ``(request, exc)`` (failure)
or ``(request, exc, delay)`` (retry). A hook's failure is logged; it never changes the
task's outcome.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncq.middleware import Job, Middleware
from asyncq.task import Task

__all__ = ["TaskHooks"]

logger = logging.getLogger("asyncq.worker")


class TaskHooks(Middleware):
    """Calls the hooks a task was registered with."""

    def applies_to(self, task: Task[..., Any]) -> bool:
        cfg = task.config
        return any(hook is not None for hook in (cfg.on_success, cfg.on_failure, cfg.on_retry))

    async def on_success(self, job: Job, value: Any) -> None:
        await _call(job.task.config.on_success, job, value)

    async def on_retry(self, job: Job, error: BaseException, delay: float) -> None:
        await _call(job.task.config.on_retry, job, error, delay)

    async def on_failure(self, job: Job, error: BaseException) -> None:
        await _call(job.task.config.on_failure, job, error)


async def _call(hook: Any, job: Job, *args: Any) -> None:
    if hook is None:
        return
    try:
        await hook(job.request, *args)
    except Exception:
        logger.exception("hook %s failed", getattr(hook, "__qualname__", hook))
