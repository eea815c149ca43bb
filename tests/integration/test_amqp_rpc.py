"""RabbitMQ-only deployments: results come back over AMQP, with documented limits."""

from __future__ import annotations

import uuid

import pytest

import asyncq


@pytest.fixture
def names() -> tuple[str, str]:
    return f"rpc{uuid.uuid4().hex[:8]}", f"rpc-q-{uuid.uuid4().hex[:8]}"


async def test_rpc_results_reach_the_producer_and_only_it(amqp_url: str,
                                                          names: tuple[str, str]) -> None:
    app_name, queue = names
    app = asyncq.App(app_name, broker=amqp_url, default_queue=queue)
    other = asyncq.App(app_name, broker=amqp_url, default_queue=queue)
    assert type(app.backend).__name__ == "AmqpResultBackend"

    @app.task
    async def mul(x: int, y: int) -> int:
        return x * y

    try:
        async with app, other, asyncq.Worker(app, concurrency=4):
            handle = await mul.enqueue(6, 7)
            assert await handle.get(timeout=20) == 42
            assert await app.result(handle.id).get(timeout=5) == 42  # same process: fine
            with pytest.raises(asyncq.ResultUnavailable, match="use a Redis backend"):
                await other.result(handle.id).get(timeout=5)
    finally:
        async with app:
            await app.broker.delete_queue(queue)
