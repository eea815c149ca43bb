"""Publishing to RabbitMQ in batches (asyncq/brokers/amqp/_frames.py), on a real node.

Concurrent enqueues are written together and confirmed one by one: every outcome a
single basic_publish could have (confirmed, returned, nacked) must reach the right
caller, in order, whatever the batch holds.

``await asyncio.gather(*(t.enqueue(i) for i in range(n)))`` runs every caller before
the batch runner: the publisher writes each full batch straight to the connection's
stream meanwhile (Publisher._write_now, _frames.write_now). Those too arrive once, in
the callers' order, and nothing goes early past a frame aiormq still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import pytest
from aiormq.abc import ChannelFrame

import asyncq
from asyncq.brokers.amqp import AmqpBroker
from asyncq.brokers.amqp import _frames as _amqp_publish


@pytest.fixture
async def app(amqp_url: str, redis_url: str) -> AsyncIterator[asyncq.App]:
    queue = f"pub-{uuid.uuid4().hex[:8]}"
    app = asyncq.App(f"pub{uuid.uuid4().hex[:6]}", broker=amqp_url, backend=redis_url,
                     default_queue=queue)
    yield app
    async with app:
        await app.broker.delete_queue(queue)


def broker(app: asyncq.App) -> AmqpBroker:
    assert isinstance(app.broker, AmqpBroker)
    return app.broker


async def test_the_installed_aiormq_takes_the_batch_path(app: asyncq.App) -> None:
    """Without the channel attributes it uses, the broker falls back to one publish at
    a time: correct, but about three times slower. Fail loudly if aiormq changed."""
    async with app:
        assert _amqp_publish.supported(await broker(app).publisher.channel())


async def test_concurrent_and_batched_enqueues_arrive_in_order_with_large_bodies(
        app: asyncq.App) -> None:
    """Bodies larger than a frame (128 KiB) are split; batches over 4 MiB take several
    writes; a batch keeps its order in the queue."""
    @app.task
    async def size(n: int, pad: bytes) -> tuple[int, int]:
        return n, len(pad)

    seen: list[int] = []

    @app.task
    async def mark(n: int) -> None:
        seen.append(n)

    async with app:
        big = await size.enqueue(0, b"x" * 300_000)
        handles = await app.enqueue_many([size.s(n, b"y" * 700_000) for n in range(1, 9)])
        singles = await asyncio.gather(*(mark.enqueue(n) for n in range(200)))
        ordered = await app.enqueue_many([mark.s(n) for n in range(200, 1500)])
        assert await broker(app).queue_size(app.default_queue) == 1 + 8 + 200 + 1300
        async with asyncq.Worker(app, concurrency=1, prefetch=0):
            assert await big.get(timeout=30) == [0, 300_000]
            assert [await h.get(timeout=30) for h in handles] == \
                [[n, 700_000] for n in range(1, 9)]
            for handle in [*singles, *ordered]:
                await handle.get(timeout=30)
    assert seen[200:] == list(range(200, 1500))
    assert sorted(seen[:200]) == list(range(200))


async def test_a_returned_message_fails_alone_and_the_rest_of_its_batch_is_sent(
        app: asyncq.App) -> None:
    exchange = f"pub-x-{uuid.uuid4().hex[:6]}"

    @app.task
    async def echo(n: int) -> int:
        return n

    async with app:
        await broker(app).declare_exchange(exchange, "direct")
        try:
            lost = echo.options(exchange=exchange, routing_key="nobody")
            with pytest.raises(asyncq.PublishError, match="nothing is bound"):
                await app.enqueue_many([echo.s(1), lost.s(2), echo.s(3)])
            outcomes = await asyncio.gather(echo.enqueue(4), lost.enqueue(5), echo.enqueue(6),
                                            return_exceptions=True)
            assert isinstance(outcomes[1], asyncq.PublishError)
            assert await broker(app).queue_size(app.default_queue) == 4  # 1, 3, 4 and 6
        finally:
            await broker(app).delete_exchange(exchange)


async def test_a_queue_deleted_under_the_producer_is_declared_again(app: asyncq.App) -> None:
    @app.task
    async def echo(n: int) -> int:
        return n

    async with app:
        await echo.enqueue(1)
        async with broker(app).raw_channel() as channel:  # as an operator would
            await channel.queue_delete(app.default_queue)
        await echo.enqueue(2)
        await app.enqueue_many([echo.s(3), echo.s(4)])
        await asyncio.sleep(0.2)
        assert await broker(app).queue_size(app.default_queue) == 3


async def test_nacked_messages_raise_publish_error_and_the_accepted_ones_arrive(
        app: asyncq.App, amqp_url: str) -> None:
    """A queue that refuses publishes beyond its length (reject-publish) makes RabbitMQ
    nack them: each refused caller gets PublishError, the others succeed."""
    exchange, full = f"pub-x-{uuid.uuid4().hex[:6]}", f"pub-full-{uuid.uuid4().hex[:6]}"

    @app.task
    async def echo(n: int) -> int:
        return n

    connection: Any = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.queue_declare(full, durable=True, arguments={
            "x-max-length": 2, "x-overflow": "reject-publish"})
        async with app:
            await broker(app).declare_exchange(exchange, "direct")
            await channel.queue_bind(full, exchange, routing_key="full")
            capped = echo.options(exchange=exchange, routing_key="full")
            outcomes = await asyncio.gather(*(capped.enqueue(n) for n in range(5)),
                                            return_exceptions=True)
            refused = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(refused) == 3
            assert all(isinstance(o, asyncq.PublishError) and "nacked" in str(o)
                       for o in refused)
            await echo.enqueue(9)  # the channel is still good
            await broker(app).delete_exchange(exchange)
        declared = await channel.queue_declare(full, passive=True)
        assert declared.message_count == 2
    finally:
        await channel.queue_delete(full)
        await connection.close()


async def test_closing_with_publishes_in_flight_ends_every_one_with_an_asyncq_error(
        app: asyncq.App) -> None:
    """No caller hangs and none gets a bare CancelledError or RuntimeError: each
    publish either completed or raised BrokerUnavailable ("may or may not be queued")."""
    @app.task
    async def echo(n: int) -> int:
        return n

    for delay in (0, 0.001, 0.01):
        await app.connect()
        calls = [asyncio.ensure_future(echo.enqueue(n)) for n in range(3000)]
        await asyncio.sleep(delay)
        await app.broker.close()
        async with asyncio.timeout(30):
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(e, asyncq.BrokerUnavailable) for e in errors), \
            {type(e).__name__ for e in errors}
    async with app:
        assert (await (await echo.enqueue(1)).info()) is None  # the broker works again


async def test_a_channel_closed_by_rabbitmq_fails_its_messages_with_publish_error(
        app: asyncq.App) -> None:
    """An exchange deleted behind the producer's back: RabbitMQ closes the publishing
    channel (404). That is a PublishError naming the reason, not "connection lost", and
    the channel comes back for the next publish."""
    exchange, queue = f"pub-x-{uuid.uuid4().hex[:6]}", f"pub-q-{uuid.uuid4().hex[:6]}"

    @app.task
    async def echo(n: int) -> int:
        return n

    async with app:
        await broker(app).declare_exchange(exchange, "direct")
        await broker(app).bind(queue, exchange, "k")
        routed = echo.options(exchange=exchange, routing_key="k")
        await routed.enqueue(1)
        async with broker(app).raw_channel() as channel:
            await channel.exchange_delete(exchange)
        try:
            with pytest.raises(asyncq.PublishError, match="NOT_FOUND"):
                await asyncio.gather(*(routed.enqueue(n) for n in range(20)))
            async with asyncio.timeout(30):
                while True:  # the robust channel reopens
                    try:
                        await echo.enqueue(2)
                        break
                    except asyncq.AsyncqError:
                        await asyncio.sleep(0.2)
            assert await broker(app).queue_size(app.default_queue) >= 1
        finally:
            await broker(app).delete_queue(queue)
            await broker(app).delete_exchange(exchange)


async def test_single_sends_and_batches_share_the_channel(app: asyncq.App) -> None:
    """AmqpBroker.send (consumers' republish, dead letters) uses aiormq's basic_publish
    on the same channel while batches register their own delivery tags."""
    from asyncq.brokers.amqp._layout import new_properties

    @app.task
    async def echo(n: int) -> int:
        return n

    async with app:
        await echo.enqueue(0)  # declares the queue
        sends = [broker(app).send("", app.default_queue, b"raw",
                                  new_properties(headers={}, correlation_id=None, reply_to=None))
                 for _ in range(100)]
        enqueues = [echo.enqueue(n) for n in range(1, 601)]
        outcomes = await asyncio.gather(*sends, *enqueues, return_exceptions=True)
        assert [o for o in outcomes if isinstance(o, BaseException)] == []
        assert await broker(app).queue_size(app.default_queue) == 701


async def _first_enqueued(app: asyncq.App) -> tuple[Any, Any]:
    """A task ``echo(n) -> n``, one call of it sent (its queue declared), and the
    publishing channel's aiormq channel."""
    @app.task
    async def echo(n: int) -> int:
        return n

    await echo.enqueue(0)
    return echo, await broker(app).publisher.channel()


async def _written_meanwhile(app: asyncq.App) -> int:
    """Run after every caller before it in the same gather: batches awaiting confirms."""
    return broker(app).publisher._window.count


async def test_a_burst_goes_out_while_its_callers_run_and_arrives_in_order(
        app: asyncq.App) -> None:
    seen: list[int] = []

    @app.task
    async def mark(n: int) -> None:
        seen.append(n)

    async with app:
        await mark.enqueue(-1)  # declares the queue
        *handles, in_flight = await asyncio.gather(
            *(mark.enqueue(n) for n in range(4500)), _written_meanwhile(app))
        assert in_flight >= 1  # written before the batch runner ran
        assert len(handles) == 4500
        assert await broker(app).queue_size(app.default_queue) == 4501
        async with asyncq.Worker(app, concurrency=1, prefetch=0):
            await handles[-1].get(timeout=60)
    assert seen == list(range(-1, 4500))


async def test_an_early_batch_to_a_queue_deleted_under_the_producer_is_sent_again(
        app: asyncq.App) -> None:
    """RabbitMQ returns what went early to a queue deleted behind the producer's back;
    each caller gets its own return, and the publisher declares the queue and sends it
    again: nothing is lost or doubled."""
    @app.task
    async def echo(n: int) -> int:
        return n

    async with app:
        await echo.enqueue(0)
        async with broker(app).raw_channel() as channel:
            await channel.queue_delete(app.default_queue)
        *_, in_flight = await asyncio.gather(*(echo.enqueue(n) for n in range(2500)),
                                             _written_meanwhile(app))
        assert in_flight >= 1
        assert await broker(app).queue_size(app.default_queue) == 2500


async def test_nothing_goes_early_past_what_aiormq_holds(app: asyncq.App) -> None:
    """The order guard: no early write while the channel's lock is held (a publish is
    being written) or aiormq's write queue has frames its writer has not written."""
    async with app:
        echo, raw = await _first_enqueued(app)
        assert _amqp_publish.stream_now(raw) is not None
        async with raw.lock:
            assert _amqp_publish.stream_now(raw) is None
        assert _amqp_publish.stream_now(raw) is not None
        raw.connection.write_queue.put_nowait(
            ChannelFrame(payload=b"", should_close=False))  # writes nothing
        assert _amqp_publish.stream_now(raw) is None
        await asyncio.sleep(0.05)  # aiormq's writer takes it
        assert _amqp_publish.stream_now(raw) is not None
        in_flight = await asyncio.gather(*(echo.enqueue(n) for n in range(1000)),
                                         _written_meanwhile(app))
        assert in_flight[-1] >= 1


async def test_each_caller_of_an_early_burst_gets_its_own_confirm_or_return(
        app: asyncq.App) -> None:
    """One burst alternating between a live queue and one deleted behind the producer's
    back: RabbitMQ confirms the messages to the live queue and returns the others (then
    sent again once the queue is declared). A confirm or return settled for the wrong
    caller would lose a message or send one twice; each queue must hold its own ids,
    once each."""
    other = f"{app.default_queue}-b"

    @app.task
    async def echo(n: int) -> int:
        return n

    to_other = echo.options(queue=other)
    async with app:
        await echo.enqueue(-1)
        await to_other.enqueue(-2)
        async with broker(app).raw_channel() as channel:
            await channel.queue_purge(app.default_queue)
            await channel.queue_delete(other)
        try:
            *handles, in_flight = await asyncio.gather(
                *((echo if n % 2 else to_other).enqueue(n) for n in range(3000)),
                _written_meanwhile(app))
            assert in_flight >= 1
            ids = [handle.id for handle in handles]
            assert sorted(await _queued_ids(broker(app), app.default_queue)) == \
                sorted(ids[1::2])
            assert sorted(await _queued_ids(broker(app), other)) == sorted(ids[0::2])
        finally:
            await broker(app).delete_queue(other)


async def _queued_ids(amqp: AmqpBroker, queue: str) -> list[str]:
    """The correlation ids (task ids) of what ``queue`` holds, taken off it."""
    ids: list[str] = []
    async with amqp.raw_channel() as channel:
        while True:
            message = await channel.basic_get(queue, no_ack=True)
            if message.delivery_tag is None:
                return ids
            ids.append(message.header.properties.correlation_id)



@contextlib.asynccontextmanager
async def _writer_held(raw: Any, free: int) -> AsyncIterator[None]:
    """aiormq's writer stuck (its socket's buffer as if full) and its write queue full
    but for ``free`` places; as it was again on leaving."""
    protocol = raw.connection.stream.transport.get_protocol()
    protocol.pause_writing()
    try:
        held = asyncio.get_running_loop().create_future()
        raw.connection.write_queue.put_nowait(  # aiormq's writer waits on its drain
            ChannelFrame(payload=b"", should_close=False, drain_future=held))
        await asyncio.sleep(0.05)
        queue = raw.connection.write_queue
        while queue.qsize() < queue.maxsize - free:
            queue.put_nowait(ChannelFrame(payload=b"", should_close=False))
        yield
    finally:
        protocol.resume_writing()


@pytest.mark.parametrize(("body", "handed_over"), [(b"never", 0), (b"x" * (3 << 20), 1)])
async def test_a_batch_cancelled_before_aiormq_took_it_gives_its_tags_back(
        app: asyncq.App, body: bytes, handed_over: int) -> None:
    """aiormq's write queue is bounded: a batch may wait to be handed over, and be
    cancelled meanwhile (its deadline, a closing App). What was not handed over gives
    its delivery tags back; nothing of the batch stays registered (message ids, confirm
    futures awaited); the next messages are confirmed as theirs. A batch over 4 MiB
    goes in several writes: here its first (one 3 MiB message) was handed over, and
    is sent."""
    from asyncq.brokers.amqp._layout import new_properties

    async with app:
        echo, raw = await _first_enqueued(app)
        async with _writer_held(raw, free=handed_over):
            tag, known = raw.delivery_tag, dict(raw.message_id_delivery_tag)
            items = [_amqp_publish.Item("", app.default_queue, body, new_properties(
                headers={}, correlation_id=None, reply_to=None)) for _ in range(3)]
            writing = asyncio.ensure_future(_amqp_publish.write(raw, items, 30))
            await asyncio.sleep(0.05)
            assert not writing.done()  # waiting for room in aiormq's queue
            writing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writing
            assert raw.delivery_tag == tag + handed_over
            assert all(t not in raw.confirmations
                       for t in range(tag + handed_over + 1, tag + 4))
            assert all(raw.confirmations[t].cancelled()
                       for t in range(tag + 1, tag + handed_over + 1))
            assert dict(raw.message_id_delivery_tag) == known
        await echo.enqueue(1)
        assert await broker(app).queue_size(app.default_queue) == 2 + handed_over
