"""``track_started``: a STARTED record just before the task runs."""

from __future__ import annotations

from typing import Any

from asyncq.middleware import Job, Middleware, Skip
from asyncq.records import ResultRecord
from asyncq.states import TaskState
from asyncq.task import Task

__all__ = ["TrackStarted"]


class TrackStarted(Middleware):
    """Stores a STARTED record for tasks registered with ``track_started=True``."""

    def applies_to(self, task: Task[..., Any]) -> bool:
        return task.config.track_started

    async def before_run(self, job: Job) -> Skip | None:
        await job.app.backend.store(job.id, ResultRecord(
            TaskState.STARTED, attempt=job.attempt, task=job.name))
        return None
