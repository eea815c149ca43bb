"""Forged results (issue 13): with signing on, records are signed with the App's keys,
bound to their task id; a reader with signing on refuses unsigned, altered and moved
records, and ignores notifications nobody signed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

import asyncq
from asyncq._record_signing import MARK
from asyncq.records import ResultRecord, encode_record
from asyncq.results.redis import reply_channel, result_channel, result_key
from asyncq.states import TaskState
from asyncq.testing import worker

KEYS = {"k1": "0123456789abcdef-results-key"}


@pytest.fixture
async def app(redis_url: str, unique: Callable[[str], str],
              redis_cleanup: Callable[[str], None]) -> AsyncIterator[asyncq.App]:
    queue = unique("sr")
    redis_cleanup(queue)
    application = asyncq.App(unique("sr"), broker=redis_url, default_queue=queue,
                             signing_keys=KEYS)
    async with application:
        yield application


def forged(value: object) -> bytes:
    return encode_record(ResultRecord(TaskState.SUCCESS, value, finished_at=1.0))


async def test_records_are_signed_and_forgeries_refused(app: asyncq.App,
                                                        redis_aio: aioredis.Redis) -> None:
    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    async with worker(app):
        first = await add.enqueue(1, 2)
        second = await add.enqueue(3, 4)
        assert await first.get(timeout=10) == 3  # the fused settle path signs too
        assert await second.get(timeout=10) == 7
    genuine = await redis_aio.get(result_key(first.id))
    assert genuine[1] == MARK
    # a reader without keys still reads signed records
    plain = asyncq.App("plain", broker=app.broker.url)
    assert (await plain.backend.get(first.id)).value == 3  # type: ignore[union-attr]
    await plain.backend.close()

    await redis_aio.set(result_key(second.id), genuine)  # a genuine record, moved
    with pytest.raises(asyncq.SignatureError, match="failed its signature check"):
        await second.get(timeout=5)
    await redis_aio.set(result_key(second.id), forged(666))  # unsigned
    with pytest.raises(asyncq.SignatureError, match="is not signed"):
        await second.get(timeout=5)
    altered = genuine[:-1] + bytes((genuine[-1] ^ 1,))
    await redis_aio.set(result_key(first.id), altered)
    with pytest.raises(asyncq.SignatureError):
        await first.get(timeout=5)


async def test_forged_notifications_are_ignored(app: asyncq.App,
                                                redis_aio: aioredis.Redis) -> None:
    @app.task
    async def slow(n: int) -> int:
        await asyncio.sleep(0.5)
        return n

    async with worker(app):
        handle = await slow.enqueue(5)
        waiting = asyncio.create_task(handle.get(timeout=10))
        await asyncio.sleep(0.2)
        reply = reply_channel(handle.id)
        assert reply is not None
        for _ in range(3):  # only published, never stored, and unsigned
            await redis_aio.publish(result_channel(handle.id), forged(666))
            # the handle waits on its process's reply channel: a forgery there too
            await redis_aio.publish(reply, result_key(handle.id).encode() + b" " + forged(666))
        assert await waiting == 5
        # an id-only handle of another process's task waits on the task's own channel
        other = ("0" if handle.id[0] != "0" else "1") * 8 + handle.id[8:]
        later = await slow.options(task_id=other).enqueue(6)
        waiting = asyncio.create_task(later.get(timeout=10))
        await asyncio.sleep(0.2)
        await redis_aio.publish(result_channel(other), forged(666))
        assert await waiting == 6


async def test_a_forged_early_notification_does_not_replace_the_genuine_record(
        app: asyncq.App, redis_aio: aioredis.Redis) -> None:
    """A record that comes before its handle is awaited is kept until then (the handle
    then reads no key); a forgery published after it must not take its place."""
    gate = asyncio.Event()

    @app.task
    async def held() -> int:
        await gate.wait()
        return 0

    @app.task
    async def quick(n: int) -> int:
        return n

    listener = app.backend._listener  # type: ignore[attr-defined]
    async with worker(app):
        keeper = asyncio.create_task((await held.enqueue()).get(timeout=20))
        async with asyncio.timeout(10):
            while listener._live is None:  # noqa: ASYNC110 - the channel is subscribed
                await asyncio.sleep(0.02)
        handle = await quick.enqueue(7)
        async with asyncio.timeout(10):
            while not len(listener._early):  # noqa: ASYNC110 - came, nobody waits
                await asyncio.sleep(0.02)
        reply = reply_channel(handle.id)
        assert reply is not None
        await redis_aio.publish(reply, result_key(handle.id).encode() + b" " + forged(666))
        await asyncio.sleep(0.3)  # the forgery took the genuine record's place
        assert await handle.get(timeout=10) == 7  # read from the key instead
        gate.set()
        assert await keeper == 0
