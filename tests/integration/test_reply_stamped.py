"""Redis results: a handle stamped while the reply channel is live waits on one future in
the listener's table (``_mine``) and reads no key. Its entry must go whichever way the
wait ends (reply, cancellation, timeout), and a second await alongside must not be left
without the record (a guard for whoever makes this wait cheaper: fanin2-report.md)."""

# ruff: noqa: F401, F811 - the fixtures imported below are used as test parameters
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

import asyncq
from asyncq.results.redis import result_key
from tests.integration.reply_harness import Live, app, gated, live_channel, until


@dataclass
class Held:
    """Handles of tasks held until ``release``, made while the reply channel is live."""

    live: Live
    handles: list[Any]
    release: asyncio.Event
    #: the keys in the listener's table before (the keeper's)
    before: set[bytes]

    @property
    def listener(self) -> Any:
        return self.live.listener

    def keys(self) -> set[bytes]:
        return set(self.listener._mine) - self.before

    def waits(self) -> list[asyncio.Future[bytes]]:
        """The futures the handles wait on (each handle's key, one future)."""
        futs = []
        for handle in self.handles:
            task_id, waiting = self.listener._mine[result_key(handle.id).encode()]
            assert task_id == handle.id
            assert len(waiting) == 1
            futs.append(waiting[0])
        return futs


@asynccontextmanager
async def held(app: asyncq.App, count: int) -> AsyncIterator[Held]:
    release = asyncio.Event()
    later = gated(app, release)
    async with live_channel(app) as live:
        before = set(live.listener._mine)
        handles = [await later.enqueue(i) for i in range(count)]
        assert all(h._since is not None for h in handles)  # stamped: no key read
        try:
            yield Held(live, handles, release, before)
        finally:
            release.set()


async def test_cancelled_and_timed_out_stamped_waits_leave_no_entry(app: asyncq.App) -> None:
    async with held(app, 6) as h:
        waits = [asyncio.ensure_future(x.get()) for x in h.handles[:3]]
        timed = [asyncio.ensure_future(x.get(timeout=0.2)) for x in h.handles[3:]]
        await until(lambda: len(h.keys()) == 6)
        assert len(h.waits()) == 6
        for wait in waits:
            wait.cancel()
        for wait in waits:
            with pytest.raises(asyncio.CancelledError):
                await wait
        for wait in timed:
            with pytest.raises(asyncq.ResultTimeout):
                await wait
        await until(lambda: not h.keys())
        h.release.set()  # the records come to nobody now: awaited again, the keys are read
        assert [await x.get(timeout=5) for x in h.handles] == list(range(6))
        assert not h.keys()


async def test_a_stamped_wait_resolved_by_its_reply_leaves_no_entry(app: asyncq.App) -> None:
    async with held(app, 5) as h:
        waits = [asyncio.ensure_future(x.get()) for x in h.handles]
        await until(lambda: len(h.keys()) == 5)
        futs = h.waits()
        h.release.set()
        assert await asyncio.gather(*waits) == list(range(5))
        assert not h.keys()
        assert all(f.done() and not f.cancelled() for f in futs)
        assert h.live.since() == []  # no key was read: each record came over the channel


async def test_a_second_await_alongside_a_stamped_wait_gets_the_record_too(
        app: asyncq.App) -> None:
    async with held(app, 1) as h:
        handle = h.handles[0]
        first = asyncio.ensure_future(handle.get())
        key = result_key(handle.id).encode()
        await until(lambda: key in h.listener._mine)
        second = asyncio.ensure_future(handle.get(timeout=10))  # not stamped: reads the key
        await until(lambda: len(h.listener._mine[key][1]) == 2)
        first.cancel()  # the stamped one goes; the other stays
        with pytest.raises(asyncio.CancelledError):
            await first
        await until(lambda: len(h.listener._mine[key][1]) == 1)
        h.release.set()
        assert await second == 0
        assert key not in h.listener._mine


async def test_a_stamped_wait_with_a_timeout_is_resolved_by_its_reply(app: asyncq.App) -> None:
    async with held(app, 5) as h:
        waits = [asyncio.ensure_future(x.get(timeout=30)) for x in h.handles]
        await until(lambda: len(h.keys()) == 5)
        futs = h.waits()
        assert all(not f.done() for f in futs)
        h.release.set()
        assert await asyncio.gather(*waits) == list(range(5))
        assert all(f.done() and not f.cancelled() for f in futs)
        assert not h.keys()
        assert h.live.since() == []  # no key was read
        deadlines = app.backend._deadlines
        assert deadlines is not None
        held_by_timers = {t for waiting, _ in deadlines._slots.values() for t in waiting}
        assert not held_by_timers & set(waits)  # (the harness's keeper may wait too)


async def test_a_stamped_wait_timing_out_leaves_its_task_as_it_was(app: asyncq.App) -> None:
    async with held(app, 1) as h:
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(asyncq.ResultTimeout):
            await h.handles[0].get(timeout=0.1)
        assert task.cancelling() == 0  # the timer's cancellation was taken back
        assert not h.keys()
        async with asyncio.timeout(5):  # the task's own timeouts still work
            await asyncio.sleep(0)
        outer = asyncio.ensure_future(h.handles[0].get(timeout=30))
        await asyncio.sleep(0.05)
        outer.cancel()  # someone else's cancellation stays one, not a ResultTimeout
        with pytest.raises(asyncio.CancelledError):
            await outer
        h.release.set()
        assert await h.handles[0].get(timeout=5) == 0
