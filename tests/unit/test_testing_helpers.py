"""asyncq.testing, as a user's test suite uses it (the opt-in plugin's fixtures)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncq
from asyncq.brokers.memory import MemoryBroker

pytest_plugins = ["asyncq.testing.plugin"]


async def test_an_app_written_for_redis_runs_on_memory(
        asyncq_memory: Callable[[asyncq.App], asyncq.App],
        asyncq_worker: Callable[..., Any]) -> None:
    app = asyncq.App("helpers", broker="redis://127.0.0.1:1/0")  # nothing listens there

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    real = app.broker
    asyncq_memory(app)
    assert isinstance(app.broker, MemoryBroker)
    async with asyncq_worker(app, concurrency=2):
        assert await (await add.enqueue(2, 3)).get(timeout=5) == 5
        handle = await add.options(countdown=0.1).enqueue(1, 1)
        assert await handle.get(timeout=5) == 2
    assert app.broker is not real  # restored when the test ends, not before
