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
    assert type(app.backend).__name__ == "RpcResultBackend"

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


async def test_topic_exchange_routes_by_pattern_and_per_call(amqp_url: str, redis_url: str,
                                                            names: tuple[str, str]) -> None:
    from asyncq.brokers.amqp import AmqpBroker

    app_name, base = names
    images, video, exchange = f"{base}-img", f"{base}-vid", f"{base}-media"
    broker = AmqpBroker(amqp_url, exchanges={exchange: "topic"},
                        bindings=[(images, exchange, "image.*"), (video, exchange, "video.#")])
    app = asyncq.App(app_name, broker=broker, backend=redis_url, task_routes={
        "media.resize": {"exchange": exchange, "routing_key": "image.resize"}})
    seen: list[str] = []

    @app.task(name="media.resize")
    async def resize(n: int) -> str:
        seen.append(asyncq.current_request().queue)
        return f"resized {n}"

    try:
        async with app, asyncq.Worker(app, queues=[images, video], concurrency=2):
            assert await (await resize.enqueue(1)).get(timeout=20) == "resized 1"
            routed = resize.options(exchange=exchange, routing_key="video.hd.h264")
            assert await (await routed.enqueue(2)).get(timeout=20) == "resized 2"
            with pytest.raises(asyncq.PublishError):
                await resize.options(exchange=exchange, routing_key="audio.mp3").enqueue(3)
        assert seen == [images, video]
    finally:
        async with app:
            await broker.delete_queue(images)
            await broker.delete_queue(video)
            await broker.delete_exchange(exchange)
