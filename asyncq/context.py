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


_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "asyncq_request", default=None
)


def current_request() -> Request:
    """The running task's request; raises ``LookupError`` outside a task."""
    request = _current.get()
    if request is None:
        raise LookupError("current_request() called outside a running asyncq task")
    return request


def set_request(request: Request) -> contextvars.Token[Request | None]:
    return _current.set(request)


def reset_request(token: contextvars.Token[Request | None]) -> None:
    _current.reset(token)
