"""What the reply-channel tests share: an app on Redis, a count of the result
keys the app's listener reads, and a worker with the app's reply channel held live."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

import asyncq


@pytest.fixture
async def app(redis_url: str, redis_cleanup: Callable[[str], None]) -> AsyncIterator[asyncq.App]:
    queue = f"replygen-{uuid.uuid4().hex[:8]}"
    redis_cleanup(queue)
    app = asyncq.App(f"replygen{uuid.uuid4().hex[:6]}", broker=redis_url, default_queue=queue)
    async with app:
        yield app
        await app.broker.delete_queue(queue)


class Reads:
    """Counts the result keys the app's listener reads (wrapping our own code only)."""

    def __init__(self, app: asyncq.App) -> None:
        self.listener: Any = app.backend._listener  # type: ignore[attr-defined]
        self.ids: list[str] = []
        keys = self.listener._keys
        add = keys.add

        def counted(task_id: str, fut: asyncio.Future[bytes]) -> None:
            self.ids.append(task_id)
            add(task_id, fut)

        keys.add = counted


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            outcome = check()
            if await outcome if not isinstance(outcome, bool) else outcome:
                return
            await asyncio.sleep(0.02)


def held_and_double(app: asyncq.App, gate: asyncio.Event) -> tuple[Any, Any]:
    """``held`` waits for ``gate``; ``double`` returns twice its argument."""
    @app.task
    async def held(n: int) -> int:
        await gate.wait()
        return n

    @app.task
    async def double(n: int) -> int:
        return n * 2

    return held, double


def gated(app: asyncq.App, release: asyncio.Event) -> Any:
    """A task (``later``) that returns its argument once ``release`` is set."""
    @app.task
    async def later(n: int) -> int:
        await release.wait()
        return n

    return later


async def keep_live(app: asyncq.App, held: Any) -> asyncio.Future[Any]:
    """A waiter that keeps the reply channel subscribed until ``held`` is let go."""
    keeper = asyncio.ensure_future((await held.enqueue(-1)).get(timeout=60))
    await until(lambda: app.backend._listener._live is not None)  # type: ignore[attr-defined]
    return keeper


@dataclass
class Live:
    """Inside :func:`live_channel`: the tasks, the key reads, and the reads made so far."""

    app: asyncq.App
    double: Any
    reads: Reads
    before: int
    gate: asyncio.Event
    keeper: asyncio.Future[Any]

    @property
    def listener(self) -> Any:
        return self.reads.listener

    def since(self) -> list[str]:
        """The ids whose key the listener read since the block began."""
        return self.reads.ids[self.before:]

    async def release(self) -> None:
        """Let the reply channel go (the keeper's task ends with its result)."""
        self.gate.set()
        assert await self.keeper == -1


@asynccontextmanager
async def live_channel(app: asyncq.App, concurrency: int = 20) -> AsyncIterator[Live]:
    """A worker for ``app`` and a waiter that holds the app's reply channel live for the
    block, released at the end (and its result checked) if the block did not."""
    gate = asyncio.Event()
    held, double = held_and_double(app, gate)
    reads = Reads(app)
    async with asyncq.Worker(app, concurrency=concurrency):
        keeper = await keep_live(app, held)
        live = Live(app, double, reads, len(reads.ids), gate, keeper)
        try:
            yield live
        finally:
            gate.set()
        assert await keeper == -1
