"""Timeouts of result waits share timers (asyncq.results._deadlines) and behave as
asyncio.timeout does: late by at most GRAIN, never early, and only their own
cancellation becomes a TimeoutError."""

from __future__ import annotations

import asyncio
import time

import pytest

import asyncq
from asyncq.errors import ResultTimeout
from asyncq.results._deadlines import GRAIN, Deadlines


async def test_a_wait_done_in_time_gives_its_value_and_leaves_no_timer() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(100)]
    waits = [asyncio.ensure_future(deadlines.within(f, 30)) for f in futures]
    await asyncio.sleep(0)
    assert 1 <= len(deadlines._slots) <= 2  # one timer for all (two across a boundary)
    for i, f in enumerate(futures):
        f.set_result(i)
    assert await asyncio.gather(*waits) == list(range(100))
    assert deadlines._slots == {}
    assert deadlines._expired == set()


async def test_a_wait_times_out_after_its_delay_never_before() -> None:
    deadlines = Deadlines()
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        await deadlines.within(never, 0.2)
    elapsed = time.monotonic() - start
    assert 0.2 <= elapsed < 0.2 + GRAIN + 1.0  # generous: a shared machine
    assert never.cancelled()
    assert deadlines._slots == {}
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_someone_else_s_cancellation_stays_a_cancellation() -> None:
    deadlines = Deadlines()
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    wait = asyncio.ensure_future(deadlines.within(never, 30))
    await asyncio.sleep(0.01)
    wait.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait
    assert deadlines._slots == {}


async def test_an_outer_timeout_shorter_than_the_wait_s_is_the_outer_one_s() -> None:
    deadlines = Deadlines()
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await deadlines.within(never, 30)
    assert deadlines._slots == {}


async def test_handles_time_out_as_result_timeout() -> None:
    app = asyncq.App("deadlines", broker="memory://deadlines-test")

    @app.task
    async def noop() -> None:
        return None

    async with app:
        handle = await noop.enqueue()  # no worker: never done
        start = time.monotonic()
        with pytest.raises(ResultTimeout):
            await handle.get(timeout=0.1)
        assert time.monotonic() - start >= 0.1


def test_a_second_event_loop_gets_timers_of_its_own() -> None:
    deadlines = Deadlines()

    async def stranded() -> None:  # its loop ends with the wait (and its timer) pending
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().create_task(deadlines.within(never, 0.05))
        await asyncio.sleep(0)

    async def times_out() -> None:
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        with pytest.raises(TimeoutError):
            await deadlines.within(never, 0.05)

    asyncio.run(stranded())
    asyncio.run(times_out())


@pytest.mark.parametrize("delay", [float("inf"), 1e308])
async def test_a_delay_too_far_to_schedule_waits_without_a_timer(delay: float) -> None:
    deadlines = Deadlines()  # asyncio.timeout accepts these too
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    wait = asyncio.ensure_future(deadlines.within(fut, delay))
    await asyncio.sleep(0)
    assert deadlines._slots == {}
    fut.set_result(1)
    assert await wait == 1
