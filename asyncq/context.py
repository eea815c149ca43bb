"""What a running task can know about itself: ``asyncq.current_request()``."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Request", "current_request"]


@dataclass(frozen=True, slots=True)
class Request:
    """The delivery being executed (Celery's ``self.request`` with ``bind=True``)."""

    id: str
    task: str
    queue: str
    attempt: int
    retries: int
    delivery_count: int
    headers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.retries


#: The fields of a Request, in order: what the worker sets for each task. The Request
#: itself is built only when asked for (most tasks never call current_request()).
RequestFields = tuple[str, str, str, int, int, int, Mapping[str, Any]]

_current: contextvars.ContextVar[Request | RequestFields | None] = contextvars.ContextVar(
    "asyncq_request", default=None
)


def current_request() -> Request:
    """The running task's request; raises ``LookupError`` outside a task."""
    value = _current.get()
    if value is None:
        raise LookupError("current_request() called outside a running asyncq task")
    if isinstance(value, Request):
        return value
    request = Request(*value)
    _current.set(request)  # the task's own context: later calls reuse it
    return request


def set_request(request: Request | RequestFields) -> contextvars.Token[Any]:
    return _current.set(request)


def reset_request(token: contextvars.Token[Any]) -> None:
    _current.reset(token)
