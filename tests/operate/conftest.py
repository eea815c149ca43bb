from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from asyncq import App

BROKERS = ["memory", "redis", "amqp"]


@pytest.fixture(params=BROKERS)
def any_broker(request: pytest.FixtureRequest, unique: Callable[[str], str]) -> str:
    if request.param == "memory":
        return f"memory://{unique('ops')}"
    fixture = "redis_url" if request.param == "redis" else "amqp_url"
    return str(request.getfixturevalue(fixture))


async def forget(app: App, queues: list[str]) -> None:
    """Delete what a test left on the servers: its queues, events, registry, exchanges."""
    broker: Any = app.broker
    async with app:
        for queue in queues:
            await broker.delete_queue(queue)
        if hasattr(broker, "client"):
            await broker.client.delete(f"asyncq:events:{{{app.name}}}",
                                       f"asyncq:workers:{{{app.name}}}")
        elif hasattr(broker, "raw_channel"):
            for name in (f"asyncq.events.{app.name}", f"asyncq.bus.{app.name}"):
                with contextlib.suppress(Exception):
                    async with broker.raw_channel() as channel:
                        await channel.exchange_delete(name)


@pytest.fixture
async def cleanup() -> AsyncIterator[Callable[[App, str], None]]:
    made: list[tuple[App, str]] = []
    yield lambda app, queue: made.append((app, queue))
    for app, queue in made:
        await forget(app, [queue])


from tests.integration.conftest import real_broker, worker_env  # noqa: E402

__all__ = ["cleanup", "forget", "real_broker", "worker_env"]
