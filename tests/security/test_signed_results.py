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
from asyncq.results.redis import result_channel, result_key
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


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    conn = aioredis.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


def forged(value: object) -> bytes:
    return encode_record(ResultRecord(TaskState.SUCCESS, value, finished_at=1.0))


async def test_records_are_signed_and_forgeries_refused(app: asyncq.App,
                                                        client: aioredis.Redis) -> None:
    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    async with worker(app):
        first = await add.enqueue(1, 2)
        second = await add.enqueue(3, 4)
        assert await first.get(timeout=10) == 3  # the fused settle path signs too
        assert await second.get(timeout=10) == 7
    genuine = await client.get(result_key(first.id))
    assert genuine[1] == MARK
    # a reader without keys still reads signed records
    plain = asyncq.App("plain", broker=app.broker.url)
    assert (await plain.backend.get(first.id)).value == 3  # type: ignore[union-attr]
    await plain.backend.close()

    await client.set(result_key(second.id), genuine)  # a genuine record, moved
    with pytest.raises(asyncq.SignatureError, match="failed its signature check"):
        await second.get(timeout=5)
    await client.set(result_key(second.id), forged(666))  # unsigned
    with pytest.raises(asyncq.SignatureError, match="is not signed"):
        await second.get(timeout=5)
    altered = genuine[:-1] + bytes((genuine[-1] ^ 1,))
    await client.set(result_key(first.id), altered)
    with pytest.raises(asyncq.SignatureError):
        await first.get(timeout=5)


async def test_forged_notifications_are_ignored(app: asyncq.App,
                                                client: aioredis.Redis) -> None:
    @app.task
    async def slow(n: int) -> int:
        await asyncio.sleep(0.5)
        return n

    async with worker(app):
        handle = await slow.enqueue(5)
        waiting = asyncio.create_task(handle.get(timeout=10))
        await asyncio.sleep(0.2)
        for _ in range(3):  # only published, never stored, and unsigned
            await client.publish(result_channel(handle.id), forged(666))
        assert await waiting == 5
