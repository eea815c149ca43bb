"""Admission: jobs wait here, holding no run slot, until their middleware admit them.

Only jobs whose pipeline has ``admit`` hooks (a rate-limited task, say) come here;
every other job goes straight to the run buffer. Each task's jobs wait in their own
line and are admitted one at a time, in order, by one asyncio task per line that
exists only while the line is not empty. An admitted job joins the run buffer, in the
order of its line. A waiting job still counts as held, so the worker's prefetch bound
stops it fetching more while a task is held back: waiting messages stay on the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator

from asyncq.middleware import Job

__all__ = ["Admission"]

logger = logging.getLogger("asyncq.worker")


class Admission:
    def __init__(self, on_admitted: Callable[[Job], None],
                 on_failed: Callable[[Job], None]) -> None:
        self._on_admitted = on_admitted
        self._on_failed = on_failed
        self._lines: dict[str, deque[Job]] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def jobs(self) -> Iterator[Job]:
        for line in self._lines.values():
            yield from line

    def add(self, job: Job) -> None:
        line = self._lines.setdefault(job.name, deque())
        line.append(job)
        if job.name not in self._runners:
            self._runners[job.name] = asyncio.create_task(
                self._admit_line(job.name, line), name=f"asyncq-admit-{job.name[:40]}")

    async def _admit_line(self, name: str, line: deque[Job]) -> None:
        try:
            while line:
                job = line[0]
                try:
                    for mw in job.pipeline.admit:
                        await mw.admit(job)
                except Exception as exc:
                    line.popleft()
                    logger.warning("%s[%s] could not be admitted (%s); handed back",
                                   job.name, job.id, exc)
                    self._on_failed(job)
                    continue
                line.popleft()
                self._on_admitted(job)
        finally:
            self._runners.pop(name, None)
            if not line:
                self._lines.pop(name, None)

    def take(self, queue: str) -> list[Job]:
        """Take out the jobs of ``queue`` that wait behind their line's first (that
        one is being admitted: it runs); the caller hands them back."""
        taken: list[Job] = []
        for line in self._lines.values():
            keep = [job for i, job in enumerate(line) if i == 0 or job.queue != queue]
            if len(keep) < len(line):
                taken += [job for i, job in enumerate(line) if i and job.queue == queue]
                line.clear()
                line.extend(keep)
        return taken

    async def close(self) -> list[Job]:
        """Stop admitting; return the jobs still waiting (to hand back)."""
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        if runners:  # bounded: a cancelled client read (a token request) may not end
            await asyncio.wait(runners, timeout=5)
        waiting = list(self.jobs())
        self._lines.clear()
        return waiting
