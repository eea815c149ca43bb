"""A stopping worker's waits end at once (Consumer.wake, the revoke listener's wake
channel), and nothing they may have received is lost or left held.

Each wait is made long here (30 s) so that a wait ending by its own timeout could not
pass the generous bounds of these tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import asyncq
from asyncq.brokers import Outgoing, Settlement
from asyncq.control import Revocation, bus_for
from asyncq.message import new_id
from asyncq.wire import encode_fields

LONG = 30.0  # what a wait would last without the wake
PROMPT = 10.0  # generous: a woken wait ends in milliseconds


@pytest.fixture
async def redis_app(redis_url: str, unique: Callable[[str], str],
                    redis_cleanup: Callable[[str], None]) -> AsyncIterator[asyncq.App]:
    queue = unique("faststop")
    redis_cleanup(queue)
    app = asyncq.App(unique("faststop"), broker=redis_url, default_queue=queue)
    async with app:
        yield app


@pytest.fixture
async def amqp_app(amqp_url: str) -> AsyncIterator[asyncq.App]:
    queue = f"faststop-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"faststop{uuid.uuid4().hex[:6]}", broker=amqp_url, default_queue=queue)
    async with app:
        yield app
        await app.broker.delete_queue(queue)


def _message(app: asyncq.App) -> Outgoing:
    msg_id = new_id()
    return Outgoing(msg_id, app.default_queue, encode_fields(msg_id, "noop", [], {}, {}, {}))


async def _prompt(task: asyncio.Task[Any]) -> Any:
    began = time.monotonic()
    result = await asyncio.wait_for(task, PROMPT + LONG)
    assert time.monotonic() - began < PROMPT, "the wait ended by its own timeout"
    return result


async def test_a_woken_redis_read_ends_on_the_server_and_strands_nothing(
        redis_app: asyncq.App, redis_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLIENT UNBLOCK ends a blocked XREADGROUP: what the read returns is exactly what
    this consumer holds, whether the messages came before, during or after the wake."""
    from asyncq.brokers.redis import _consumer

    monkeypatch.setattr(_consumer, "PROMOTE_INTERVAL", LONG)  # reads block LONG
    stream = f"asyncq:{{{redis_app.default_queue}}}:stream"
    sent = got = 0
    for round_ in range(8):
        consumer = redis_app.broker.consumer([redis_app.default_queue], prefetch=50,
                                             lease=LONG)
        read = asyncio.create_task(consumer.fetch(50, LONG))
        await asyncio.sleep(0.05 if round_ % 2 else 0)  # blocked on the server, or not sent
        batch = [_message(redis_app) for _ in range(round_ % 3)]
        publish = asyncio.create_task(redis_app.broker.publish_many(batch))
        consumer.wake()
        held = list(await _prompt(read))
        await publish
        sent += len(batch)
        pending = redis_client.xpending(stream, "asyncq")["pending"]
        assert pending == len(held)  # nothing read that the fetch did not return
        await consumer.ack([Settlement(d) for d in held])
        got += len(held)
        await consumer.close()
    assert await redis_app.broker.queue_size(redis_app.default_queue) == sent - got


async def test_a_woken_rabbitmq_fetch_returns_and_hands_back_what_came_later(
        amqp_app: asyncq.App) -> None:
    consumer = amqp_app.broker.consumer([amqp_app.default_queue], prefetch=10, lease=LONG)
    assert await consumer.fetch(10, 0.01) == []  # consuming
    read = asyncio.create_task(consumer.fetch(10, LONG))
    await asyncio.sleep(0.05)
    consumer.wake()
    assert await _prompt(read) == []
    await amqp_app.broker.publish_many([_message(amqp_app) for _ in range(3)])
    await asyncio.sleep(0.2)  # delivered to the consumer's inbox, never fetched
    await consumer.close()  # hands them back
    deadline = time.monotonic() + 10
    while await amqp_app.broker.queue_size(amqp_app.default_queue) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("broker", ["memory", "amqp"])
async def test_a_stopping_idle_worker_does_not_wait_for_its_fetch(
        broker: str, request: pytest.FixtureRequest) -> None:
    url = "memory://" if broker == "memory" else str(request.getfixturevalue("amqp_url"))
    queue = f"faststop-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"faststop{uuid.uuid4().hex[:6]}", broker=url, default_queue=queue)

    @app.task
    async def noop() -> None:
        return None

    worker = asyncq.Worker(app, fetch_timeout=LONG)
    async with worker:
        assert await (await noop.enqueue()).get(timeout=10) is None
        await asyncio.sleep(0.1)  # the fetch waits for the next message
        worker.stop()
        await _prompt(worker._task)
    if broker == "amqp":
        async with app:
            await app.broker.delete_queue(queue)


async def test_the_redis_revoke_listener_stops_at_once_and_ignores_its_wake_channel(
        redis_app: asyncq.App, monkeypatch: pytest.MonkeyPatch) -> None:
    from asyncq.control import _redis

    monkeypatch.setattr(_redis, "_READ", LONG)  # each read of the subscription: LONG
    bus = bus_for(redis_app.broker, redis_app.name)
    seen: list[str] = []
    ready, stop = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(bus.listen(lambda r: seen.append(r.task_id), ready, stop))
    await asyncio.wait_for(ready.wait(), PROMPT)
    task_id = new_id()
    await bus.publish(Revocation(task_id, at=time.time()))
    deadline = time.monotonic() + PROMPT
    while not seen:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    stop.set()
    await _prompt(listener)
    assert seen == [task_id]  # the wake message is not taken for a revocation
    await bus.clear()
