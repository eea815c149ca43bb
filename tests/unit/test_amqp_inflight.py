"""The RabbitMQ publisher's written batches awaiting confirms are bounded by count and
by bytes (asyncq.brokers.amqp._inflight): a stalled broker must not make the producer
hold every message's frames (review6: 397 MB for 20,000 messages of 20 KB)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from asyncq.brokers.amqp._inflight import FRAME_BYTES, InFlight, batch_bytes


async def _blocked(window: InFlight, size: int) -> asyncio.Task[None]:
    task = asyncio.ensure_future(window.acquire(size))
    await asyncio.sleep(0.01)
    return task


async def test_more_batches_than_the_count_wait_for_a_release() -> None:
    window = InFlight(batches=2, limit=1 << 20)
    await window.acquire(10)
    await window.acquire(10)
    third = await _blocked(window, 10)
    assert not third.done()
    window.release(10)
    await asyncio.wait_for(third, 1)
    assert (window.count, window.bytes) == (2, 20)


async def test_more_bytes_than_the_limit_wait_and_a_large_batch_goes_alone() -> None:
    window = InFlight(batches=64, limit=1000)
    await window.acquire(600)
    second = await _blocked(window, 600)  # 1,200 bytes would be in flight
    assert not second.done()
    window.release(600)
    await asyncio.wait_for(second, 1)
    window.release(600)
    await asyncio.wait_for(window.acquire(5000), 1)  # alone, whatever its size
    small = await _blocked(window, 1)
    assert not small.done()
    window.release(5000)
    await asyncio.wait_for(small, 1)


async def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    window = InFlight(batches=1, limit=1 << 20)
    await window.acquire(10)
    waiting = await _blocked(window, 10)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not window._queue
    assert (window.count, window.bytes) == (1, 10)
    window.release(10)
    await asyncio.wait_for(window.acquire(10), 1)


def test_a_batch_counts_its_bodies_and_frames() -> None:
    bodies = [SimpleNamespace(body=body) for body in (b"x" * 100, b"", b"yy")]
    assert batch_bytes(bodies) == 102 + 3 * FRAME_BYTES
    assert batch_bytes([]) == 0


async def test_batches_wait_in_order_a_large_one_is_not_overtaken() -> None:
    window = InFlight(batches=64, limit=1000)
    await window.acquire(100)
    large = await _blocked(window, 5000)  # needs the window empty
    small = await _blocked(window, 100)  # would fit now, but comes after the large one
    assert not large.done()
    assert not small.done()
    window.release(100)
    await asyncio.wait_for(large, 1)
    assert not small.done()
    assert (window.count, window.bytes) == (1, 5000)
    window.release(5000)
    await asyncio.wait_for(small, 1)
    assert (window.count, window.bytes) == (1, 100)


async def test_a_wait_cancelled_after_it_was_counted_in_gives_its_room_back() -> None:
    window = InFlight(batches=1, limit=1 << 20)
    await window.acquire(10)
    waiting = await _blocked(window, 20)
    window.release(10)  # counts the waiting one in and wakes it ...
    waiting.cancel()  # ... but it is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (window.count, window.bytes) == (0, 0)
    await asyncio.wait_for(window.acquire(10), 1)


async def test_a_cancelled_head_of_the_line_lets_the_next_one_go() -> None:
    window = InFlight(batches=64, limit=1000)
    await window.acquire(100)
    large = await _blocked(window, 5000)
    small = await _blocked(window, 100)
    large.cancel()
    with pytest.raises(asyncio.CancelledError):
        await large
    await asyncio.wait_for(small, 1)
    assert (window.count, window.bytes) == (2, 200)
