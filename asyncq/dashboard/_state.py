"""What the dashboard knows: folded from the app's events, plus the broker's depths."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any, Final

from asyncq.events import bus_for, is_lost

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.events.queues import Depth

__all__ = ["ClusterState"]

logger = logging.getLogger("asyncq.dashboard")

_STATES: Final = {"task-received": "RECEIVED", "task-dead-lettered": "DEAD",
                  "task-started": "STARTED", "task-succeeded": "SUCCESS",
                  "task-failed": "FAILURE", "task-retried": "RETRY",
                  "task-revoked": "REVOKED", "task-cancelled": "CANCELLED"}
#: seconds over which the per-queue rate is computed
RATE_WINDOW: Final = 60.0


class ClusterState:
    """Workers, recent tasks and per-queue rates, kept up to date from the event stream
    by a background task started on first use (so it works mounted in any ASGI app)."""

    def __init__(self, app: App, *, keep: int = 500, depth_ttl: float = 2.0) -> None:
        self.app = app
        self.keep = keep
        self.depth_ttl = depth_ttl
        self.workers: dict[str, dict[str, Any]] = {}
        self.tasks: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.finished: dict[str, deque[float]] = {}
        self._follower: asyncio.Task[None] | None = None
        self._depths: dict[str, Depth] = {}
        self._depths_at = 0.0

    async def start(self) -> None:
        if self._follower is None or self._follower.done():
            await self.app.connect()
            self._follower = asyncio.create_task(self._follow(), name="asyncq-dashboard")
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follower

    async def _follow(self) -> None:
        bus = bus_for(self.app)
        while True:
            try:
                async for event in bus.follow(history=self.keep):
                    self.apply(event)
            except Exception as exc:
                logger.warning("event stream interrupted (%s); retrying", exc)
                await asyncio.sleep(1.0)

    def apply(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", ""))
        if kind.startswith("worker-"):
            name = str(event.get("worker"))
            self.workers[name] = {**event, "state": kind.removeprefix("worker-")}
            return
        state = _STATES.get(kind)
        task_id = event.get("id")
        if state is None or not isinstance(task_id, str):
            return
        row = self.tasks.pop(task_id, None) or {"id": task_id}
        row.update({k: event[k] for k in ("task", "queue", "worker", "attempt", "runtime",
                                          "error", "ts") if k in event})
        row["state"] = state
        self.tasks[task_id] = row
        while len(self.tasks) > self.keep:
            self.tasks.popitem(last=False)
        if state not in ("STARTED", "RECEIVED"):
            done = self.finished.setdefault(str(event.get("queue")), deque(maxlen=10_000))
            done.append(float(event.get("ts") or time.time()))

    def worker_rows(self, recorded: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Workers seen in events, merged with the registry; lost ones marked."""
        rows = {name: dict(info) for name, info in self.workers.items()}
        for info in recorded or []:
            rows.setdefault(str(info.get("worker")), dict(info))
        for row in rows.values():
            if row.get("state") not in ("offline",) and is_lost(row):
                row["state"] = "lost"
            elif row.get("state") in ("heartbeat", "online"):
                row["state"] = "online"
        return sorted(rows.values(), key=lambda r: (r.get("state") != "online",
                                                    str(r.get("worker"))))

    def rate(self, queue: str) -> float:
        """Tasks finished per second on ``queue`` over the last minute."""
        done = self.finished.get(queue)
        if not done:
            return 0.0
        since = time.time() - RATE_WINDOW
        return sum(1 for ts in done if ts >= since) / RATE_WINDOW

    def queues(self) -> list[str]:
        known = {self.app.queue_for(task) for task in self.app.tasks.values()}
        known |= {str(row.get("queue")) for row in self.tasks.values() if row.get("queue")}
        for info in self.workers.values():
            known |= {str(q) for q in info.get("queues") or []}
        return sorted(known or {self.app.default_queue})

    async def depths(self) -> dict[str, Depth]:
        from asyncq.events.queues import queue_depths

        if time.monotonic() - self._depths_at > self.depth_ttl:
            self._depths = await queue_depths(self.app, self.queues())
            self._depths_at = time.monotonic()
        return self._depths

    async def snapshot(self) -> dict[str, Any]:
        """Everything the pages show, as plain data (also served as JSON)."""
        await self.start()
        recorded = await bus_for(self.app).workers()
        depths = await self.depths()
        return {
            "app": self.app.name,
            "workers": self.worker_rows(recorded),
            "queues": [{"queue": q, **d.as_dict(), "rate": round(self.rate(q), 3)}
                       for q, d in depths.items()],
            "tasks": list(reversed(self.tasks.values())),
        }
