"""Revoke, SCHEDULED and progress on every broker (memory, Redis, RabbitMQ)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import asyncq
from asyncq.middleware.revoke import Revoke

MakeApp = Callable[..., asyncq.App]


@pytest.fixture
async def make_app(make_app: MakeApp) -> AsyncIterator[MakeApp]:
    """The suite's make_app; the revocations its apps kept are deleted afterwards."""
    apps: list[asyncq.App] = []

    def make(**kwargs: Any) -> asyncq.App:
        app = make_app(**kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.connect()
        await revoker_of(app).bus(app.broker).clear()


def revoker_of(app: asyncq.App) -> Revoke:
    found = [mw for mw in app.run_middleware() if isinstance(mw, Revoke)]
    assert found
    return found[0]


async def test_a_revoked_queued_task_never_runs(make_app: MakeApp) -> None:
    app = make_app()
    ran: list[int] = []

    @app.task
    async def work(n: int) -> int:
        ran.append(n)
        return n

    async with app:
        doomed = await work.enqueue(1)
        kept = await work.enqueue(2)
        await doomed.revoke()
        assert await doomed.state() is asyncq.TaskState.REVOKED
        async with asyncq.Worker(app, concurrency=2):
            assert await kept.get(timeout=20) == 2
            with pytest.raises(asyncq.TaskRevoked):
                await doomed.get(timeout=20)
        assert ran == [2]
        assert await doomed.state() is asyncq.TaskState.REVOKED
        assert isinstance(asyncq.TaskRevoked("x"), asyncq.ResultError)


async def test_a_countdown_task_is_scheduled_with_its_eta_and_can_be_revoked(
        make_app: MakeApp) -> None:
    app = make_app()
    ran: list[int] = []

    @app.task
    async def work(n: int) -> int:
        ran.append(n)
        return n

    async with app, asyncq.Worker(app, concurrency=2):
        before = time.time()
        doomed = await work.options(countdown=1.0).enqueue(1)
        later = await work.options(countdown=1.0).enqueue(2)
        info = await doomed.info()
        assert info is not None
        assert info.state is asyncq.TaskState.SCHEDULED
        assert info.eta is not None
        assert before + 0.9 < info.eta < time.time() + 1.1
        await app.result(doomed.id).revoke()  # a handle from the id alone
        assert await later.get(timeout=20) == 2
        with pytest.raises(asyncq.TaskRevoked):
            await doomed.get(timeout=5)
        await asyncio.sleep(0.3)
    assert ran == [2]
    assert await later.state() is asyncq.TaskState.SUCCESS


async def test_terminate_cancels_a_running_task(make_app: MakeApp) -> None:
    app = make_app()
    started = asyncio.Event()
    seen: list[str] = []

    @app.task
    async def slow() -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "finished"

    async with app, asyncq.Worker(app, concurrency=2) as worker:
        handle = await slow.enqueue()
        await asyncio.wait_for(started.wait(), 20)
        await handle.revoke(terminate=True)
        with pytest.raises(asyncq.TaskRevoked):
            await handle.get(timeout=20)
        await worker.join(timeout=20)
        assert worker.statistics().running == 0
    assert seen == ["cancelled"]
    assert await handle.state() is asyncq.TaskState.REVOKED


async def test_revoke_without_terminate_lets_a_running_task_finish_but_stays_revoked(
        make_app: MakeApp) -> None:
    app = make_app()
    started, go = asyncio.Event(), asyncio.Event()

    @app.task
    async def slow() -> str:
        started.set()
        await go.wait()
        await asyncq.current_request().progress(1, 1)
        return "finished"

    async with app, asyncq.Worker(app, concurrency=2) as worker:
        handle = await slow.enqueue()
        await asyncio.wait_for(started.wait(), 20)
        await handle.revoke()
        go.set()
        await worker.join(timeout=20)
    assert await handle.state() is asyncq.TaskState.REVOKED  # first final writer wins


async def test_a_revocation_reaches_a_worker_started_later_and_a_running_one_fast(
        make_app: MakeApp, unique: Callable[[str], str]) -> None:
    name = unique("app")
    producer, first, second = make_app(name=name), make_app(name=name), make_app(name=name)
    ran: list[int] = []
    for app in (producer, first, second):
        @app.task(name="work")
        async def work(n: int) -> int:
            ran.append(n)
            return n
    send = producer.tasks["work"]
    async with producer:
        async with first, asyncq.Worker(first, concurrency=1):
            listening = revoker_of(first)
            doomed = await send.options(countdown=30).enqueue(1)
            began = time.perf_counter()
            await producer.revoke(doomed.id)
            while doomed.id not in listening.revoked:
                assert time.perf_counter() - began < 1.0, "revocation took over 1 s"
                await asyncio.sleep(0.002)
            latency = time.perf_counter() - began
        print(f"revoke latency: {latency * 1000:.1f} ms")
        # a worker that starts later (a restart) reads the revocation when it starts
        async with second, asyncq.Worker(second, concurrency=1):
            assert doomed.id in revoker_of(second).revoked


async def test_progress_is_readable_from_the_handle(make_app: MakeApp) -> None:
    app = make_app()
    reported, finish = asyncio.Event(), asyncio.Event()

    @app.task
    async def rows(total: int) -> int:
        await asyncq.current_request().progress(3, total)
        reported.set()
        await finish.wait()
        return total

    async with app, asyncq.Worker(app, concurrency=2):
        handle = await rows.enqueue(10)
        await asyncio.wait_for(reported.wait(), 20)
        deadline = time.monotonic() + 10
        while await handle.progress() is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        info = await handle.info()
        assert info is not None
        assert info.state is asyncq.TaskState.STARTED
        progress = await handle.progress()
        assert progress is not None
        assert (progress.done, progress.total, progress.fraction) == (3, 10, 0.3)
        finish.set()
        assert await handle.get(timeout=20) == 10
        assert await handle.progress() is None
