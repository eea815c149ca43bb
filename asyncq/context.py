"""What a running task can know about itself: ``asyncq.current_request()``."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from asyncq.middleware import Job
    from asyncq.results import ResultBackend

__all__ = ["Request", "current_request"]


@dataclass(frozen=True, slots=True)
class Request:
    """The delivery being executed (Celery's ``self.request`` with ``bind=True``).

    ``args`` and ``kwargs`` are the call's arguments; ``attempt`` and ``retries`` both
    count the retries so far (0 on the first run; ``retries`` is Celery's name), and
    ``max_retries`` is the task's configured limit.
    """

    id: str
    task: str
    queue: str
    attempt: int
    max_retries: int
    delivery_count: int
    headers: Mapping[str, Any] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    backend: ResultBackend | None = field(default=None, repr=False, compare=False)

    @property
    def retries(self) -> int:
        """Retries so far, as Celery's ``self.request.retries`` (same as ``attempt``)."""
        return self.attempt

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_retries

    async def progress(self, done: float, total: float | None = None) -> None:
        """Report progress: stores a ``STARTED`` record carrying ``Progress(done, total)``,
        which anyone holding the handle reads with ``await handle.progress()`` or
        ``(await handle.info()).progress``. One write per call: report every few
        percent, not every row. A settled record (the task was revoked meanwhile) is
        never replaced by it."""
        from asyncq.records import Progress, ResultRecord
        from asyncq.states import TaskState

        if self.backend is None:
            return
        await self.backend.store(self.id, ResultRecord(
            TaskState.STARTED, attempt=self.attempt, task=self.task,
            progress=Progress(done, total)))


_current: contextvars.ContextVar[Request | Job | None] = contextvars.ContextVar(
    "asyncq_request", default=None
)


def request_of(job: Job) -> Request:
    """The Request of a job being run (built once, when first asked for)."""
    request = job.state.get(_KEY)
    if request is None:
        message = job.message
        request = job.state[_KEY] = Request(
            message.id, message.task, job.delivery.queue, message.attempt,
            job.task.config.retries, job.delivery.delivery_count, message.headers,
            tuple(message.args), message.kwargs, job.app.backend)
    return request


def current_request() -> Request:
    """The running task's request; raises ``LookupError`` outside a task."""
    value = _current.get()
    if value is None:
        raise LookupError("current_request() called outside a running asyncq task")
    if isinstance(value, Request):
        return value
    return request_of(value)


#: ``set_request(request_or_job)`` and ``reset_request(token)``: the variable's own methods
#: (no Python call around them: the worker sets and resets it around every run)
set_request = _current.set
reset_request = _current.reset


_KEY: Final = "asyncq.request"
