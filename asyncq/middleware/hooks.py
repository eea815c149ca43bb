"""Per-task hooks: ``@app.task(on_success=..., on_failure=..., on_retry=...)``.

Each hook is ``hook(request, value)`` (success), ``(request, exc)`` (failure) or
``(request, exc, delay)`` (retry), ``async def`` or plain ``def``; ``request`` is the
:class:`~asyncq.Request` of the call, with its ``args`` and ``kwargs``. A hook's
failure is logged; it never changes the task's outcome.

:class:`AppHooks` is the same for every task of an App (Celery's ``Task`` base class
with ``on_failure`` overridden): ``App(middleware=[AppHooks(on_failure=alert)])``. It
runs before a task's own hooks.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

from asyncq.middleware import Job, Middleware
from asyncq.task import Hook, Task

__all__ = ["AppHooks", "TaskHooks"]

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


class AppHooks(Middleware):
    """Hooks called for every task of the App (or those named in ``tasks``, if given).

    Only the hooks given are installed: ``AppHooks(on_failure=alert)`` adds nothing to
    a successful run.
    """

    def __new__(cls, *, on_success: Hook | None = None, on_failure: Hook | None = None,
                on_retry: Hook | None = None, tasks: Iterable[str] | None = None
                ) -> AppHooks:
        given = (on_success is not None, on_failure is not None, on_retry is not None)
        return super().__new__(_variant(cls, given))

    def __init__(self, *, on_success: Hook | None = None, on_failure: Hook | None = None,
                 on_retry: Hook | None = None, tasks: Iterable[str] | None = None) -> None:
        self.success_hook = on_success
        self.failure_hook = on_failure
        self.retry_hook = on_retry
        self.tasks = None if tasks is None else frozenset(tasks)

    def __repr__(self) -> str:
        hooks = [name for name, hook in (("on_success", self.success_hook),
                 ("on_failure", self.failure_hook), ("on_retry", self.retry_hook)) if hook]
        return f"<AppHooks {' '.join(hooks) or 'none'}>"

    def applies_to(self, task: Task[..., Any]) -> bool:
        return self.tasks is None or task.name in self.tasks


class _Success(AppHooks):
    async def on_success(self, job: Job, value: Any) -> None:
        await _call(self.success_hook, job, value)


class _Failure(AppHooks):
    async def on_failure(self, job: Job, error: BaseException) -> None:
        await _call(self.failure_hook, job, error)


class _Retry(AppHooks):
    async def on_retry(self, job: Job, error: BaseException, delay: float) -> None:
        await _call(self.retry_hook, job, error, delay)


_VARIANTS: dict[tuple[type[AppHooks], tuple[bool, bool, bool]], type[AppHooks]] = {}


def _variant(cls: type[AppHooks], given: tuple[bool, bool, bool]) -> type[AppHooks]:
    """A subclass of ``cls`` overriding only the hooks given (one per combination)."""
    found = _VARIANTS.get((cls, given))
    if found is None:
        mixins = [m for m, on in zip((_Success, _Failure, _Retry), given, strict=True) if on]
        found = type(cls.__name__, (*mixins, cls), {}) if mixins else cls
        _VARIANTS[cls, given] = found
    return found


async def _call(hook: Hook | None, job: Job, *args: Any) -> None:
    if hook is None:
        return
    try:
        result = hook(job.request, *args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("hook %s failed", getattr(hook, "__qualname__", hook))
