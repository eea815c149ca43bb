"""RabbitMQ under hostile input (issue 13): forged delivery counters, forged replies."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import msgpack
import pamqp.frame
import pytest

import asyncq
from asyncq.wire import encode_fields

pytestmark = pytest.mark.amqp

DIE_TASK = '''

@app.task(queue=QUEUE)
async def die() -> None:
    os._exit(1)
'''


@pytest.fixture
async def raw_channel(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel()


async def test_a_forged_negative_redelivery_count_still_dead_letters(
        amqp_url: str, tasks_dir: Path, start_worker: Callable[..., Any],
        raw_channel: aio_pika.abc.AbstractChannel) -> None:
    with (tasks_dir / "wtasks.py").open("a") as f:
        f.write(DIE_TASK)
    queue = f"forged-{uuid.uuid4().hex[:8]}"
    env = {"T_APP": f"fg{uuid.uuid4().hex[:6]}", "T_BROKER": amqp_url, "T_QUEUE": queue,
           "T_LEDGER": str(tasks_dir / "ledger.txt")}
    app = asyncq.App("forger", broker=amqp_url, default_queue=queue)
    async with app:
        await app.broker.layout.queue(queue)  # type: ignore[attr-defined]
        body = encode_fields("forged-1", "wtasks.die", [], {}, {}, {})
        await raw_channel.default_exchange.publish(
            aio_pika.Message(body, headers={"x-asyncq-redeliveries": -1000}), routing_key=queue)
        try:
            starts = 0
            deadline = time.monotonic() + 90
            while not await app.broker.dead_letters(queue) and time.monotonic() < deadline:
                worker = start_worker(env, "--max-deliveries", "3", name=f"die{starts}")
                starts += 1
                while worker.proc.poll() is None and time.monotonic() < deadline:
                    if await app.broker.dead_letters(queue):
                        break
                    await asyncio.sleep(0.1)
                worker.proc.kill()
                worker.proc.wait(10)
            (letter,) = await app.broker.dead_letters(queue)
            assert "delivered 4 times" in letter.reason, letter.reason
            assert starts <= 5, f"{starts} workers started before the message was dead-lettered"
        finally:
            await app.broker.delete_queue(queue)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_forged_replies_to_a_producer_are_dropped(
        amqp_url: str, raw_channel: aio_pika.abc.AbstractChannel) -> None:
    queue = f"replies-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"rp{uuid.uuid4().hex[:6]}", broker=amqp_url, default_queue=queue)

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    async with app:
        try:
            handle = await add.enqueue(1, 2)  # one task this process waits for
            backend: Any = app.backend
            address = backend.address
            assert address
            assert address.startswith("asyncq.reply.")
            big = b"S" + os.urandom(4 * 1024 * 1024)
            before = rss_kb()
            for i in range(30):  # 120 MiB of forged replies, some for the real id
                cid = handle.id if i % 3 == 0 else uuid.uuid4().hex
                await raw_channel.default_exchange.publish(
                    aio_pika.Message(big, correlation_id=cid), routing_key=address)
            for _ in range(3000):  # many small ones for random ids
                await raw_channel.default_exchange.publish(
                    aio_pika.Message(b"S\x90", correlation_id=uuid.uuid4().hex),
                    routing_key=address)
            for _ in range(600):
                if backend.dropped >= 3030:
                    break
                await asyncio.sleep(0.1)
            grown_mb = (rss_kb() - before) / 1024
            assert backend.dropped == 3030 - 0  # 30 big (10 for the real id) + 3000 small
            assert grown_mb < 60, f"RSS grew by {grown_mb:.0f} MB"
            assert await handle.state() is asyncq.TaskState.PENDING
            assert len(backend._entries) == 1
        finally:
            await app.broker.delete_queue(queue)



async def test_forged_replies_to_a_worker_are_dropped_and_signed_results_win(
        amqp_url: str, raw_channel: aio_pika.abc.AbstractChannel) -> None:
    """A worker's own reply queue (its App has one too), with signing on: a forged
    record for a real id is dropped, so the genuine one is what the handle gets."""
    from asyncq.testing import worker

    queue = f"wreplies-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"wr{uuid.uuid4().hex[:6]}", broker=amqp_url, default_queue=queue,
                     signing_keys={"k1": "0123456789abcdef-rpc-key"})

    @app.task
    async def slow(n: int) -> int:
        await asyncio.sleep(0.5)
        return n

    try:
        async with worker(app):
            backend: Any = app.backend
            handle = await slow.enqueue(7)
            before = rss_kb()
            forged = b"S" + msgpack.packb([1, 666, None, None, None, 0, None, 1.0])
            for i in range(40):
                cid = handle.id if i % 2 == 0 else uuid.uuid4().hex
                body = forged if i % 4 == 0 else b"S" + os.urandom(2 * 1024 * 1024)
                await raw_channel.default_exchange.publish(
                    aio_pika.Message(body, correlation_id=cid), routing_key=backend.address)
            assert await handle.get(timeout=20) == 7
            for _ in range(300):
                if backend.dropped >= 40:
                    break
                await asyncio.sleep(0.1)
            assert backend.dropped == 40
            assert (rss_kb() - before) / 1024 < 60
    finally:
        async with app:
            await app.broker.delete_queue(queue)


async def test_results_go_only_to_reply_queues(
        amqp_url: str, raw_channel: aio_pika.abc.AbstractChannel) -> None:
    """An unsigned message's reply_to naming any other queue gets no result there."""
    from asyncq.testing import worker

    queue, victim = f"rto-{uuid.uuid4().hex[:8]}", f"victim-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"rt{uuid.uuid4().hex[:6]}", broker=amqp_url, default_queue=queue)
    ran: list[int] = []

    @app.task
    async def add(x: int, y: int) -> int:
        ran.append(x + y)
        return x + y

    victim_queue = await raw_channel.declare_queue(victim, auto_delete=True)
    try:
        async with worker(app):
            await app.broker.layout.queue(queue)  # type: ignore[attr-defined]
            body = encode_fields("rto-1", add.name, [1, 2], {}, {}, {})
            await raw_channel.default_exchange.publish(
                aio_pika.Message(body, reply_to=victim, correlation_id="rto-1"),
                routing_key=queue)
            for _ in range(100):
                if ran:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        assert ran == [3]
        assert await victim_queue.get(fail=False) is None
    finally:
        async with app:
            await app.broker.delete_queue(queue)


async def _publish_raw(amqp_url: str, queue: str, header: bytes, body: bytes) -> None:
    """A basic.publish with the content header frame as given (not one aio-pika would
    make: its text properties may hold bytes that are not UTF-8)."""
    from aiormq.abc import ChannelFrame
    from pamqp import commands as spec
    from pamqp.body import ContentBody

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        raw = await channel.get_underlay_channel()
        payload = (pamqp.frame.marshal(spec.Basic.Publish(routing_key=queue), raw.number)
                   + header + pamqp.frame.marshal(ContentBody(body), raw.number))
        await raw.write_queue.put(ChannelFrame(payload=payload, should_close=False))
        await asyncio.sleep(0.2)  # written before the connection closes


async def test_text_properties_and_header_keys_that_are_not_utf8_stop_nobody(
        amqp_url: str, redis_url: str) -> None:
    """Such a message is handed to the worker (bad text replaced, an undecodable headers
    table marked) on the same connection; pamqp refused the frame and aiormq dropped the
    consumer's connection, again at every redelivery."""
    from pamqp import commands as spec
    from pamqp.header import ContentHeader

    queue = f"utf-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"utf{uuid.uuid4().hex[:6]}", broker=amqp_url, backend=redis_url,
                     default_queue=queue)
    async with app:
        consumer = app.broker.consumer([queue], prefetch=10, lease=30)
        await consumer.start()
        connection = app.broker.conn.connection().transport.connection  # type: ignore[attr-defined]
        body = encode_fields("utf-1", "echo", [], {}, {}, {})
        channel_number = 1
        properties = spec.Basic.Properties(message_id="AA", headers={"kk": 1})
        frame = pamqp.frame.marshal(ContentHeader(0, len(body), properties), channel_number)
        bad = frame.replace(b"\x02AA", b"\x02\xff\xfe").replace(b"\x02kk", b"\x02\xfe\xff")
        await _publish_raw(amqp_url, queue, bad, body)
        got = []
        for _ in range(30):
            got += await consumer.fetch(10, 0.2)
            if got:
                break
        assert [d.body for d in got] == [body]
        message = got[0].tag.message
        assert message.message_id == "\ufffd\ufffd"
        assert "x-asyncq-undecodable-headers" in message.headers
        assert not connection.is_closed
        assert app.broker.conn.connection().transport.connection is connection  # type: ignore[attr-defined]
        await consumer.ack([asyncq.brokers.Settlement(d) for d in got])
        await consumer.close()
        await app.broker.delete_queue(queue)
