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


async def test_try_acquire_takes_room_only_when_nobody_waits_and_it_fits() -> None:
    """The early write of a burst's batch (no waiting) never jumps the line."""
    window = InFlight(batches=2, limit=1000)
    assert window.try_acquire(600)
    assert not window.try_acquire(600)  # 1,200 bytes: would not fit
    assert (window.count, window.bytes) == (1, 600)
    waiting = await _blocked(window, 600)
    window.release(600)
    await asyncio.wait_for(waiting, 1)
    assert window.try_acquire(300)
    assert not window.try_acquire(1)  # two batches: full
    window.release(300)
    window.release(600)
    assert window.try_acquire(5000)  # alone, whatever its size
    large = await _blocked(window, 5000)
    window.release(5000)
    await asyncio.wait_for(large, 1)
    assert not window.try_acquire(1)  # nothing fits beside a batch over the limit
    window.release(5000)
    second = await _blocked(window, 10)  # (not waiting: the window is empty)
    assert second.done()
    window.release(10)


async def test_try_acquire_does_not_overtake_a_waiting_batch() -> None:
    window = InFlight(batches=64, limit=1000)
    await window.acquire(100)
    large = await _blocked(window, 5000)  # waits for the window to empty
    assert not window.try_acquire(1)
    window.release(100)
    await asyncio.wait_for(large, 1)
    window.release(5000)


async def test_try_acquire_may_count_room_for_more_batches_but_not_more_bytes() -> None:
    window = InFlight(batches=2, limit=1000)
    assert window.try_acquire(100)
    assert window.try_acquire(100)
    assert not window.try_acquire(100)
    assert window.try_acquire(100, batches=4)
    assert window.try_acquire(100, batches=4)
    assert not window.try_acquire(100, batches=4)  # four batches
    assert (window.count, window.bytes) == (4, 400)
    window.release(100)
    assert not window.try_acquire(701, batches=4)  # 1,001 bytes
    waiting = await _blocked(window, 100)  # the window's own count: two
    assert not waiting.done()
    for _ in range(2):
        window.release(100)
    await asyncio.wait_for(waiting, 1)
