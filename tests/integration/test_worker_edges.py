"""Edge cases of running tasks in an in-process worker, on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import asyncq


@pytest.fixture
async def app(redis_url: str, unique: Callable[[str], str],
              redis_cleanup: Callable[[str], None]) -> AsyncIterator[asyncq.App]:
    queue = unique("edges")
    redis_cleanup(queue)
    app = asyncq.App(unique("edges"), broker=redis_url, default_queue=queue)
    yield app
    await app.close()


async def test_a_task_raising_cancelled_error_fails_and_frees_its_slot(
        app: asyncq.App) -> None:
    @app.task
    async def cancels_itself() -> None:
        inner = asyncio.create_task(asyncio.sleep(10))
        inner.cancel()
        await inner  # raises CancelledError in the task, which nobody cancelled

    @app.task
    async def double(n: int) -> int:
        return 2 * n

    async with app, asyncq.Worker(app, concurrency=1, prefetch=0) as worker:
        handles = [await cancels_itself.enqueue() for _ in range(3)]
        for handle in handles:
            with pytest.raises(asyncq.TaskFailed) as caught:
                await handle.get(timeout=20)
            assert caught.value.exc_type.endswith("CancelledError")
        # the one slot came back every time: later work still runs
        assert await (await double.enqueue(21)).get(timeout=20) == 42
        await worker.join(timeout=20)
        assert worker.statistics().held == 0


async def test_time_limits_are_timeout_errors_for_retry_on_and_hooks(app: asyncq.App) -> None:
    seen: list[Any] = []

    async def on_failure(request: Any, exc: BaseException) -> None:
        seen.append(exc)

    attempts: list[int] = []

    @app.task(retries=2, retry_on=(TimeoutError,), retry_backoff=0.01, timeout=0.2,
              on_failure=on_failure)
    async def slow() -> None:
        attempts.append(asyncq.current_request().attempt)
        await asyncio.sleep(5)

    async with app, asyncq.Worker(app, concurrency=2):
        with pytest.raises(asyncq.TaskFailed) as caught:
            await (await slow.enqueue()).get(timeout=30)
    assert attempts == [0, 1, 2]  # retried twice, as retry_on=(TimeoutError,) asks
    assert caught.value.exc_type == "TimeoutError"
    assert "time limit of 0.2 s" in caught.value.exc_message
    [exc] = seen
    assert isinstance(exc, asyncq.TimeLimitExceeded)
    assert isinstance(exc, TimeoutError)
    assert isinstance(exc, asyncq.AsyncqError)


async def test_scripts_flushed_from_the_server_are_loaded_again(app: asyncq.App,
                                                               redis_client: Any) -> None:
    """Batches run scripts by EVALSHA without asking first; NOSCRIPT reloads them."""
    @app.task
    async def double(n: int) -> int:
        return 2 * n

    async with app, asyncq.Worker(app, concurrency=4):
        assert await (await double.enqueue(1)).get(timeout=20) == 2
        redis_client.script_flush()  # as after a server restart
        handles = await app.enqueue_many([double.s(n) for n in range(20)])  # publish.lua
        later = await double.options(countdown=0.3).enqueue(50)  # promote.lua
        assert [await h.get(timeout=20) for h in handles] == [2 * n for n in range(20)]
        assert await later.get(timeout=20) == 100


async def test_a_batch_larger_than_one_script_argument_keeps_its_order(
        app: asyncq.App, redis_client: Any) -> None:
    """enqueue_many splits a stream's bodies into ~4 MB script arguments, in order."""
    @app.task
    async def echo(n: int, pad: bytes) -> int:
        return n

    pad = b"x" * 700_000
    async with app:
        handles = await app.enqueue_many([echo.s(n, pad) for n in range(14)])
        entries = redis_client.xrange(f"asyncq:{{{app.default_queue}}}:stream")
        assert [asyncq.message.Message.decode(f[b"d"]).id for _, f in entries] == \
            [h.id for h in handles]
        async with asyncq.Worker(app, concurrency=4):
            assert [await h.get(timeout=30) for h in handles] == list(range(14))



async def test_records_settled_together_keep_each_its_own_ttl(
        app: asyncq.App, redis_client: Any, unique: Callable[[str], str]) -> None:
    """settle.lua gets each TTL as text (the worker makes the text once per run of equal
    TTLs): records of one settle with different TTLs expire each after its own."""
    from asyncq.brokers import KeyWrite, Settlement

    ttls = [60_000, 60_000, 5_000, 600_000, 600_000]
    keys = [f"asyncq:result:{unique(f'ttl{n}')}" for n in range(len(ttls))]
    try:
        async with app:
            consumer, deliveries = await _five_delivered(app)
            await consumer.ack([Settlement(d, KeyWrite(key, b"S-done", ttl, None, final=True))
                                for d, key, ttl in zip(deliveries, keys, ttls, strict=True)])
            await consumer.close()
        left = [redis_client.pttl(key) for key in keys]
    finally:
        redis_client.delete(*keys)
    for ttl, pttl in zip(ttls, left, strict=True):
        assert ttl - 5_000 < pttl <= ttl


async def test_a_settled_final_record_is_never_replaced_but_a_rejection_is(
        app: asyncq.App, redis_client: Any, unique: Callable[[str], str]) -> None:
    """settle.lua: results written with the ack follow first-final-writer-wins."""
    from asyncq.brokers import KeyWrite, Settlement

    keys = [f"asyncq:result:{unique(name)}"
            for name in ("settled", "rejected", "unset", "retrying", "late-progress")]
    redis_client.set(keys[0], b"S-first", px=5_000)
    redis_client.set(keys[1], b"X-rejection", px=5_000)
    redis_client.set(keys[3], b"s-started", px=5_000)  # a non-final write replaces it
    redis_client.set(keys[4], b"V-revoked", px=5_000)  # nothing replaces a settled record
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(*(f"done:{key}" for key in keys), *(f"reply:{key}" for key in keys))
    try:
        async with app:
            consumer, deliveries = await _five_delivered(app)
            writes = [KeyWrite(key, b"F-second", 60_000, f"done:{key}", final=True,
                               reply=f"reply:{key}") for key in keys[:3]]
            writes += [KeyWrite(key, b"R-retrying", 60_000, None, final=False)
                       for key in keys[3:]]
            await consumer.ack([Settlement(d, w)
                                for d, w in zip(deliveries, writes, strict=True)])
            assert await app.broker.queue_size(app.default_queue) == 0
            await consumer.close()
        values = [redis_client.get(key) for key in keys]
        settled_ttl = redis_client.pttl(keys[0])
        published = _published(pubsub)
    finally:
        pubsub.close()
        redis_client.delete(*keys)
    assert values == [b"S-first", b"F-second", b"F-second", b"R-retrying", b"V-revoked"]
    assert 0 < settled_ttl <= 60_000  # the kept record still expires
    assert published == {f"done:{keys[1]}": b"F-second", f"done:{keys[2]}": b"F-second",
                         f"reply:{keys[1]}": f"{keys[1]} F-second".encode(),
                         f"reply:{keys[2]}": f"{keys[2]} F-second".encode()}


def _published(pubsub: Any) -> dict[str, bytes]:
    """Everything the subscription received within about a second."""
    out: dict[str, bytes] = {}
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            out[message["channel"].decode()] = message["data"]
    return out


async def test_acked_entries_leave_the_stream_in_any_order(
        app: asyncq.App, redis_client: Any) -> None:
    """settle.lua trims acked entries from the head and deletes the others one by one;
    with nothing pending, the trim reaches the last delivered entry and no further."""
    from asyncq.brokers import Settlement

    stream = f"asyncq:{{{app.default_queue}}}:stream"
    async with app:
        await app.broker.publish_many([_noop_message(app) for _ in range(5)])
        consumer = app.broker.consumer([app.default_queue], prefetch=5, lease=30)
        held = list(await consumer.fetch(5, 1.0))
        await app.broker.publish_many([_noop_message(app), _noop_message(app)])  # not fetched
        await consumer.ack([Settlement(d) for d in held[3:]])  # later ones first
        assert redis_client.xlen(stream) == 3 + 2
        await consumer.ack([Settlement(held[0])])  # the oldest: trimmed from the head
        assert [e[0] for e in redis_client.xrange(stream, count=2)] == [d.tag for d in held[1:3]]
        await consumer.ack([Settlement(d) for d in held[1:3]])
        assert redis_client.xlen(stream) == 2
        assert await app.broker.queue_size(app.default_queue) == 2
        rest = await consumer.fetch(5, 1.0)
        assert [e[0] for e in redis_client.xrange(stream)] == [d.tag for d in rest]
        await consumer.ack([Settlement(d) for d in rest])
        assert redis_client.xlen(stream) == 0
        # only the first out-of-order acks needed XDEL (it marks what it deleted; a
        # trim does not): the last batch, with nothing left pending, was trimmed whole
        deleted = redis_client.xinfo_stream(stream)["max-deleted-entry-id"]
        assert deleted == held[4].tag
        await consumer.close()


async def test_a_settle_after_the_queue_was_deleted_still_stores_the_result(
        app: asyncq.App, redis_client: Any, unique: Callable[[str], str]) -> None:
    """With the stream or its group gone, settle.lua has nothing to trim and goes on."""
    from asyncq.brokers import KeyWrite, Settlement

    key = f"asyncq:result:{unique('orphan')}"
    try:
        async with app:
            await app.broker.publish_many([_noop_message(app)])
            consumer = app.broker.consumer([app.default_queue], prefetch=1, lease=30)
            [delivery] = await consumer.fetch(1, 1.0)
            await app.broker.delete_queue(app.default_queue)
            await consumer.ack([Settlement(delivery, KeyWrite(key, b"S-done", 60_000))])
            assert redis_client.get(key) == b"S-done"
            # the stream again, without the group
            await app.broker.publish_many([_noop_message(app)])
            await consumer.ack([Settlement(delivery)])
            assert await app.broker.queue_size(app.default_queue) == 1
    finally:
        redis_client.delete(key)


async def _five_delivered(app: asyncq.App) -> tuple[Any, list[Any]]:
    """A consumer holding five no-op messages just published."""
    await app.broker.publish_many([_noop_message(app) for _ in range(5)])
    consumer = app.broker.consumer([app.default_queue], prefetch=5, lease=30)
    deliveries = await consumer.fetch(5, 1.0)
    assert len(deliveries) == 5
    return consumer, deliveries


def _noop_message(app: asyncq.App) -> Any:
    """A message for ``noop()`` on the app's default queue, as enqueue would build it."""
    from asyncq.brokers import Outgoing
    from asyncq.message import new_id
    from asyncq.wire import encode_fields

    msg_id = new_id()
    return Outgoing(msg_id, app.default_queue, encode_fields(msg_id, "noop", [], {}, {}, {}))


class _Odd(BaseException):
    """Not an Exception (as gevent.Timeout or a test framework's outcome are)."""


async def test_a_task_raising_a_base_exception_keeps_its_slot_and_is_dead_lettered(
        app: asyncq.App) -> None:
    @app.task
    async def odd() -> None:
        raise _Odd("not an Exception")

    @app.task
    async def double(n: int) -> int:
        return 2 * n

    async with app, asyncq.Worker(app, concurrency=1, prefetch=0, max_deliveries=2) as worker:
        bad = await odd.enqueue()
        # the one runner came back: later work still runs
        assert await (await double.enqueue(21)).get(timeout=20) == 42
        # the message was handed back (counted) each time, so it ends dead, not held
        with pytest.raises(asyncq.TaskFailed):
            await bad.get(timeout=20)
        await worker.join(timeout=20)
        assert worker.statistics().held == 0


async def test_cancelling_a_queue_while_a_suspect_waits_for_the_buffer_does_not_stall(
        redis_url: str, unique: Callable[[str], str],
        redis_cleanup: Callable[[str], None]) -> None:
    qa, qb, qc = unique("qa"), unique("qb"), unique("qc")
    for queue in (qa, qb, qc):
        redis_cleanup(queue)
    app = asyncq.App(unique("stall"), broker=redis_url)

    @app.task(queue=qa)
    async def a(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "a"

    @app.task(queue=qb)
    async def b() -> str:
        return "b"

    async with app:
        suspect = await b.enqueue()
        consumer = app.broker.consumer([qb], prefetch=1, lease=30)
        (delivery,) = await consumer.fetch(1, 5.0)
        await consumer.requeue([delivery], counted=True)  # it comes back a second time
        await consumer.close()
        async with asyncq.Worker(app, [qa, qc], concurrency=1, prefetch=3,
                                 max_deliveries=2) as worker:
            running = await a.enqueue(1.0)
            waiting = [await a.enqueue(0) for _ in range(2)]
            for _ in range(100):  # one runs, two wait for the runner
                if worker.statistics().held == 3:
                    break
                await asyncio.sleep(0.02)
            await worker.add_queue(qb)  # the suspect: runs alone once the buffer drained
            for _ in range(100):
                if worker._suspects:
                    break
                await asyncio.sleep(0.02)
            assert worker._suspects
            assert len(worker.held()["reserved"]) == 3
            assert await worker.cancel_queue(qa) == 2  # empties the buffer
            assert await running.get(timeout=10) == "a"
            assert await suspect.get(timeout=10) == "b"
        assert [await h.state() for h in waiting] == [asyncq.TaskState.PENDING] * 2


async def test_a_second_waiter_on_a_foreign_id_does_not_read_before_the_subscription(
        app: asyncq.App, unique: Callable[[str], str]) -> None:
    """Two waits on an id another process made (its own channel): the second must not
    read the key before the shared subscription is confirmed, or it misses a record
    stored in between until the slow recheck."""
    backend = app.backend
    listener = backend._listener  # type: ignore[attr-defined]
    task_id = unique("foreign")
    write = backend.success_write(task_id, 42, 1, "t")
    async with app:
        async with listener._lock:  # the subscription waits: as on a slow server
            first = asyncio.create_task(backend.wait(task_id, timeout=20))
            await asyncio.sleep(0.05)
            second = asyncio.create_task(backend.wait(task_id, timeout=20))
            await asyncio.sleep(0.3)  # the second has read the key by now, if it reads
            await backend.store_writes([write])  # stored (and published) meanwhile
        assert (await asyncio.wait_for(first, 5)).value == 42
        assert (await asyncio.wait_for(second, 5)).value == 42


async def test_a_settle_tried_again_after_not_replicated_queues_no_second_retry(
        redis_url: str, unique: Callable[[str], str], redis_client: Any,
        redis_cleanup: Callable[[str], None]) -> None:
    """wait_replicas with too few replicas: every settle raises NotReplicated after the
    master applied it and is tried again; the next attempt is queued once, not once
    per try (the test server has no replica)."""
    from asyncq.brokers import Outgoing
    from asyncq.worker.execute import RetryLater
    from asyncq.worker.settle import Settler

    queue = unique("norepl")
    redis_cleanup(queue)
    app = asyncq.App(unique("norepl"), default_queue=queue,
                     broker=f"{redis_url}?wait_replicas=1&wait_timeout=0.05")
    async with app:
        plain = asyncq.App(unique("plain"), broker=redis_url)
        async with plain:
            await plain.broker.publish(Outgoing("norepl-1", queue, b"first"))
        consumer = app.broker.consumer([queue], prefetch=1, lease=30)
        (delivery,) = await consumer.fetch(1, 5.0)
        write = app.backend.success_write(unique("id"), 1, 1, "t")
        # due at once (retry_backoff=0): a copy per try would each land in the stream
        retry = RetryLater(delivery, Outgoing("norepl-1", queue, b"again"), write)
        settler = Settler(consumer, app.backend, app.broker.publish_many, lambda n: None)
        settler.add(retry)
        running = asyncio.create_task(settler.run())
        await asyncio.sleep(1.6)  # tries at 0, 0.1, 0.3, 0.7, 1.5 s
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await consumer.close()
    delayed = redis_client.zrange(f"asyncq:{{{queue}}}:delayed", 0, -1)
    stream = [f[b"d"] for _, f in redis_client.xrange(f"asyncq:{{{queue}}}:stream")]
    assert delayed.count(b"again") + stream.count(b"again") == 1


async def test_a_dead_letter_tried_again_after_not_replicated_is_kept_once(
        redis_url: str, unique: Callable[[str], str], redis_client: Any,
        redis_cleanup: Callable[[str], None]) -> None:
    """dead.lua run again (NotReplicated after the master applied it) adds no copy."""
    from asyncq.brokers import Outgoing
    from asyncq.worker.execute import Dead
    from asyncq.worker.settle import Settler

    queue = unique("nodead")
    redis_cleanup(queue)
    app = asyncq.App(unique("nodead"), default_queue=queue,
                     broker=f"{redis_url}?wait_replicas=1&wait_timeout=0.05")
    async with app:
        plain = asyncq.App(unique("plain"), broker=redis_url)
        async with plain:
            await plain.broker.publish(Outgoing("nodead-1", queue, b"poison"))
        consumer = app.broker.consumer([queue], prefetch=1, lease=30)
        (delivery,) = await consumer.fetch(1, 5.0)
        settler = Settler(consumer, app.backend, app.broker.publish_many, lambda n: None)
        settler.add(Dead(delivery, "bad", None, "t"))
        running = asyncio.create_task(settler.run())
        await asyncio.sleep(0.8)  # tries at 0, 0.1, 0.3, 0.7 s
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await consumer.close()
    assert redis_client.xlen(f"asyncq:{{{queue}}}:dead") == 1


async def test_cancelling_a_queue_hands_back_jobs_held_by_a_rate_limit(
        redis_url: str, unique: Callable[[str], str],
        redis_cleanup: Callable[[str], None]) -> None:
    """Jobs waiting for a rate limit's token are waiting here too: cancel-consumer hands
    them back to their queue (but for the one being admitted), not runs them later."""
    qa, qb = unique("rla"), unique("rlb")
    for queue in (qa, qb):
        redis_cleanup(queue)
    app = asyncq.App(unique("rlcancel"), broker=redis_url)

    @app.task(queue=qa, rate_limit="1/m")
    async def slow(n: int) -> int:
        return n

    async with app:
        handles = [await slow.enqueue(n) for n in range(6)]
        async with asyncq.Worker(app, [qa, qb], concurrency=2, prefetch=4) as worker:
            assert await handles[0].get(timeout=10) == 0  # the burst's token(s)
            await asyncio.sleep(0.3)
            ran = [await h.state() for h in handles].count(asyncq.TaskState.SUCCESS)
            assert ran < 6
            assert len(worker._admission) == 6 - ran  # each waits, holding no slot
            assert await worker.cancel_queue(qa) == 5 - ran  # all but the one admitting
            assert len(worker._admission) == 1
            for _ in range(100):
                if await app.broker.queue_size(qa) == 5 - ran:
                    break
                await asyncio.sleep(0.02)
            assert await app.broker.queue_size(qa) == 5 - ran
            worker.abort()
        states = [await h.state() for h in handles[ran:]]
        assert states == [asyncq.TaskState.PENDING] * (6 - ran)
