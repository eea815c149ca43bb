"""A batch of result writes on Redis: several records per script call, each under the
record rule (first final writer wins), each notified, more than one call's worth too."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from asyncq.records import ResultRecord
from asyncq.results.redis import _PER_CALL, RedisResultBackend, result_key
from asyncq.states import TaskState


async def test_a_batch_over_one_call_stores_every_record_under_the_rule(
        redis_url: str, redis_aio: aioredis.Redis, unique: Callable[[str], str]) -> None:
    backend = RedisResultBackend(redis_url, ttl=60)
    ids = [unique("batch") for _ in range(_PER_CALL * 2 + 3)]
    kept, replaced = ids[7], ids[_PER_CALL + 1]  # in the first call, in the second
    try:
        await backend.store(kept, ResultRecord(TaskState.FAILURE, error_type="E",
                                               error_message="first", task="t"))
        await backend.store(replaced, ResultRecord(TaskState.STARTED, task="t"))
        pubsub = redis_aio.pubsub()
        await pubsub.subscribe(backend.channel_for(replaced), backend.channel_for(kept))
        await pubsub.get_message(timeout=1)
        await pubsub.get_message(timeout=1)
        writes = [backend.success_write(task_id, n, 1, "t") for n, task_id in enumerate(ids)]
        await backend.store_writes(writes)
        records = [await backend.get(task_id) for task_id in ids]
        for n, (task_id, record) in enumerate(zip(ids, records, strict=True)):
            assert record is not None
            if task_id == kept:  # a settled record stays
                assert (record.state, record.error_message) == (TaskState.FAILURE, "first")
            else:
                assert (record.state, record.value) == (TaskState.SUCCESS, n)
        heard = await _messages(pubsub)
        assert heard == [backend.channel_for(replaced).encode()]  # not the kept one
        assert 0 < await redis_aio.pttl(result_key(ids[-1])) <= 60_000
        await pubsub.aclose()
    finally:
        await redis_aio.delete(*(result_key(task_id) for task_id in ids))
        await backend.close()


async def test_a_mixed_batch_keeps_each_write_its_own_fields(
        redis_url: str, redis_aio: aioredis.Redis, unique: Callable[[str], str]) -> None:
    """A non-final record between final ones: not notified, and a later final write of
    its id still replaces it; each record has its own TTL."""
    backend = RedisResultBackend(redis_url, ttl=60)
    first, middle, last = (unique("mixed") for _ in range(3))
    try:
        writes = [backend.success_write(first, "a", 1, "t"),
                  backend.key_write(middle, ResultRecord(TaskState.RETRY, attempt=2)),
                  backend.success_write(last, "c", 1, "t")]
        writes[1].ttl_ms = 5_000
        await backend.store_writes(writes)
        assert await _state(backend, middle) == TaskState.RETRY
        assert 0 < await redis_aio.pttl(result_key(middle)) <= 5_000
        await backend.store_writes([backend.success_write(middle, "b", 2, "t")])
        values = [(await backend.get(task_id)) for task_id in (first, middle, last)]
        assert [v.value for v in values if v is not None] == ["a", "b", "c"]
    finally:
        await redis_aio.delete(*(result_key(task_id) for task_id in (first, middle, last)))
        await backend.close()


async def _state(backend: RedisResultBackend, task_id: str) -> TaskState | None:
    record = await backend.get(task_id)
    return None if record is None else record.state


async def _messages(pubsub: Any) -> list[bytes]:
    heard: list[bytes] = []
    while (message := await pubsub.get_message(ignore_subscribe_messages=True,
                                               timeout=0.5)) is not None:
        heard.append(message["channel"])
    await asyncio.sleep(0)
    return heard


async def test_a_write_that_fails_does_not_cost_the_others_of_its_call(
        redis_url: str, redis_aio: aioredis.Redis, unique: Callable[[str], str]) -> None:
    """One record Redis refuses (its key holds another type: a caller's own task id)
    fails the batch as it did when each record had a call of its own, but the writes
    after it in the same script call are stored and notified all the same."""
    backend = RedisResultBackend(redis_url, ttl=60)
    before, bad, after = (unique("poison") for _ in range(3))
    try:
        await redis_aio.hset(result_key(bad), "not", "a record")
        pubsub = redis_aio.pubsub()
        await pubsub.subscribe(backend.channel_for(after))
        await pubsub.get_message(timeout=1)
        writes = [backend.success_write(task_id, n, 1, "t")
                  for n, task_id in enumerate((before, bad, after))]
        with pytest.raises(ResponseError, match="WRONGTYPE"):  # as each call's used to
            await backend.store_writes(writes)
        assert await _state(backend, before) == TaskState.SUCCESS
        assert await _state(backend, after) == TaskState.SUCCESS
        assert await _messages(pubsub) == [backend.channel_for(after).encode()]
        await pubsub.aclose()
    finally:
        await redis_aio.delete(*(result_key(task_id) for task_id in (before, bad, after)))
        await backend.close()


def test_a_batch_of_large_records_does_not_cut_off_a_listener(
        redis_url: str, redis_client: redis.Redis, unique: Callable[[str], str]) -> None:
    """What one script call publishes reaches a subscriber's output buffer at once:
    Redis cuts off a subscriber past 32 MB of it (``client-output-buffer-limit pubsub``,
    the default). 400 records of 100 kB (40 MB, a worker's settled batch of mid-size
    results) must reach a listener that reads all along, as they did one call each."""
    backend = RedisResultBackend(redis_url, ttl=60)
    ids = [unique("large") for _ in range(400)]
    reply = unique("asyncq:test-reply")
    heard: list[bytes] = []
    lost: list[BaseException] = []
    subscribed = threading.Event()

    def listen() -> None:
        pubsub = redis_client.pubsub()
        try:
            pubsub.subscribe(reply)
            pubsub.get_message(timeout=5)
            subscribed.set()
            while len(heard) < len(ids):
                message = pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
                if message is None:
                    return
                heard.append(message["data"])
        except redis.ConnectionError as exc:
            lost.append(exc)
        finally:
            pubsub.close()

    async def store() -> None:
        writes = [backend.success_write(task_id, "x" * 100_000, 1, "t") for task_id in ids]
        for write in writes:
            write.reply = reply
        await backend.store_writes(writes)
        await backend.close()

    listener = threading.Thread(target=listen)
    listener.start()
    try:
        assert subscribed.wait(5)
        asyncio.run(store())
        listener.join(30)
        assert not lost, lost  # the subscriber was cut off
        assert len(heard) == len(ids)
    finally:
        redis_client.delete(*(result_key(task_id) for task_id in ids))
