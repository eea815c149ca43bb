"""Retries: on ``retry_on`` exceptions and ``raise asyncq.Retry(...)``, with backoff."""

from __future__ import annotations

from typing import Final

from asyncq.backoff import retry_delay
from asyncq.errors import Retry
from asyncq.middleware import Job, Middleware

__all__ = ["DEFAULT_RETRY_LIMIT", "Retries"]

#: Retries of ``raise Retry()`` when neither it nor the task sets a limit.
DEFAULT_RETRY_LIMIT: Final = 3


class Retries(Middleware):
    """Decides whether a failed run runs again, and after how long.

    A task retries on exceptions of its ``retry_on`` types, up to ``retries`` times,
    after ``retry_backoff * 2**attempt`` seconds (capped at ``retry_backoff_max``, full
    jitter unless ``retry_jitter=False``). ``raise Retry(delay=...)`` retries any task,
    up to ``Retry.max_retries``, else the task's ``retries``, else 3.
    """

    def retry_delay(self, job: Job, error: BaseException) -> float | None:
        cfg = job.task.config
        if isinstance(error, Retry):
            limit = error.max_retries if error.max_retries is not None else (
                cfg.retries or DEFAULT_RETRY_LIMIT)
        elif cfg.retries and isinstance(error, cfg.retry_on):
            limit = cfg.retries
        else:
            return None
        if job.attempt >= limit:
            return None
        if isinstance(error, Retry) and error.delay is not None:
            return max(0.0, error.delay)
        return retry_delay(job.attempt, base=cfg.retry_backoff, cap=cfg.retry_backoff_max,
                           jitter=cfg.retry_jitter)
