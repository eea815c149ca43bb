"""The middleware seam: order, what each hook may do, and that a plain task pays nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import asyncq
from asyncq.middleware import Call, CallNext, Job, Middleware, Pipeline, RunResult, Skip
from asyncq.middleware.expiry import Expiry
from asyncq.middleware.revoke import Revoke
from asyncq.states import TaskState


class Recorder(Middleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def before_enqueue(self, call: Call) -> None:
        call.headers[f"x-{self.name}"] = self.name
        self.log.append(f"{self.name}.before_enqueue")

    async def after_enqueue(self, call: Call, task_id: str) -> None:
        self.log.append(f"{self.name}.after_enqueue")

    async def worker_start(self, worker: asyncq.Worker) -> None:
        self.log.append(f"{self.name}.worker_start")

    async def worker_stop(self, worker: asyncq.Worker) -> None:
        self.log.append(f"{self.name}.worker_stop")

    async def before_run(self, job: Job) -> Skip | None:
        self.log.append(f"{self.name}.before_run")
        return None

    async def around_run(self, job: Job, call_next: CallNext) -> Any:
        self.log.append(f"{self.name}.around>")
        try:
            return await call_next()
        finally:
            self.log.append(f"{self.name}.around<")

    async def on_success(self, job: Job, value: Any) -> None:
        self.log.append(f"{self.name}.on_success")

    async def after_run(self, job: Job, result: RunResult) -> None:
        self.log.append(f"{self.name}.after_run:{result.state}")


@pytest.fixture(params=["memory", "redis"])
def url(request: pytest.FixtureRequest, unique: Callable[[str], str]) -> str:
    if request.param == "memory":
        return f"memory://{unique('mw')}"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def queue(unique: Callable[[str], str], url: str, request: pytest.FixtureRequest) -> str:
    name = unique("mwq")
    if url.startswith("redis"):
        request.getfixturevalue("redis_cleanup")(name)
    return name


async def test_hooks_run_in_the_documented_order(url: str, queue: str) -> None:
    log: list[str] = []
    app = asyncq.App("mw", broker=url, default_queue=queue,
                     middleware=[Recorder("a", log), Recorder("b", log)])

    @app.task
    async def echo() -> dict[str, Any]:
        log.append("task")
        return dict(asyncq.current_request().headers)

    async with app:
        handle = await echo.enqueue()
        assert log == ["a.before_enqueue", "b.before_enqueue", "b.after_enqueue",
                       "a.after_enqueue"]
        log.clear()
        async with asyncq.Worker(app, concurrency=1):
            headers = await handle.get(timeout=10)
    assert headers == {"x-a": "a", "x-b": "b"}
    assert log == [
        "a.worker_start", "b.worker_start",
        "a.before_run", "b.before_run", "a.around>", "b.around>", "task", "b.around<",
        "a.around<", "a.on_success", "b.on_success", "b.after_run:SUCCESS",
        "a.after_run:SUCCESS", "a.worker_stop", "b.worker_stop"]


async def test_a_refused_enqueue_sends_nothing(url: str, queue: str) -> None:
    class Refuse(Middleware):
        async def before_enqueue(self, call: Call) -> None:
            if call.args and call.args[0] < 0:
                raise ValueError("negative amounts are refused")

    app = asyncq.App("mw", broker=url, default_queue=queue, middleware=[Refuse()])

    @app.task
    async def pay(amount: int) -> int:
        return amount

    async with app:
        with pytest.raises(ValueError, match="refused"):
            await pay.enqueue(-1)
        assert await app.broker.queue_size(queue) == 0
        with pytest.raises(ValueError, match="refused"):
            await app.enqueue_many([pay.s(1), pay.s(-2)])
        assert await app.broker.queue_size(queue) == 0
        handle = await pay.enqueue(3)
        async with asyncq.Worker(app, concurrency=1):
            assert await handle.get(timeout=10) == 3


async def test_skips_record_their_state_and_failures_stay_data(url: str, queue: str) -> None:
    log: list[str] = []

    class Gate(Middleware):
        def applies_to(self, task: asyncq.Task[..., Any]) -> bool:
            return task.name.endswith("guarded")

        def check_run(self, job: Job) -> Skip | None:
            if job.message.args == [0]:
                return Skip(TaskState.CANCELLED, "Gated", "zero is not allowed")
            return None

        async def before_run(self, job: Job) -> Skip | None:
            if job.message.args == [1]:
                raise RuntimeError("before_run refused it")
            return None

        async def after_run(self, job: Job, result: RunResult) -> None:
            log.append(f"{job.message.args[0]}:{result.state}")
            raise RuntimeError("an observer failing changes nothing")

    app = asyncq.App("mw", broker=url, default_queue=queue, middleware=[Gate()])

    @app.task
    async def guarded(n: int) -> int:
        return n

    @app.task
    async def open_(n: int) -> int:
        return n

    async with app, asyncq.Worker(app, concurrency=2):
        zero, one, two, other = (await guarded.enqueue(0), await guarded.enqueue(1),
                                 await guarded.enqueue(2), await open_.enqueue(0))
        with pytest.raises(asyncq.TaskCancelled, match="zero is not allowed"):
            await zero.get(timeout=10)
        with pytest.raises(asyncq.TaskFailed, match="before_run refused it"):
            await one.get(timeout=10)
        assert await two.get(timeout=10) == 2
        assert await other.get(timeout=10) == 0  # Gate does not apply to it
    assert sorted(log) == ["0:CANCELLED", "1:FAILURE", "2:SUCCESS"]


def test_a_plain_task_runs_through_synchronous_checks_only() -> None:
    """Revoke and expiry are set and dict lookups; nothing else wraps a plain task."""
    app = asyncq.App("mw", broker="memory://plain")

    @app.task
    async def plain() -> None: ...

    @app.task(timeout=5, track_started=True)
    async def limited() -> None: ...

    pipe = Pipeline(app.run_middleware(), plain)
    assert [type(m) for m in pipe.checks] == [Revoke, Expiry]
    assert (pipe.admit, pipe.retry_hooks, pipe.failure) == ([], [], [])
    assert (pipe.before, pipe.around, pipe.success, pipe.after, pipe.observed) == (
        [], [], [], [], False)
    limited_pipe = Pipeline(app.run_middleware(), limited)
    assert [type(m).__name__ for m in limited_pipe.before] == ["TrackStarted"]
    assert [type(m).__name__ for m in limited_pipe.around] == ["TimeLimits"]


async def test_an_expired_task_is_cancelled_without_running(url: str, queue: str) -> None:
    ran: list[int] = []
    app = asyncq.App("mw", broker=url, default_queue=queue)

    @app.task
    async def late(n: int) -> None:
        ran.append(n)

    async with app:
        handle = await late.options(expires=0.05).enqueue(1)
        await asyncio.sleep(0.2)
        async with asyncq.Worker(app, concurrency=1):
            with pytest.raises(asyncq.TaskCancelled, match="expired"):
                await handle.get(timeout=10)
    assert ran == []


class _Stamp(Middleware):
    async def before_enqueue(self, call: Call) -> None:
        call.headers["x-stamp"] = "1"


async def test_concurrent_enqueues_through_enqueue_hooks_share_round_trips(
        redis_url: str, unique: Callable[[str], str]) -> None:
    """With an enqueue hook, ``await task.enqueue()`` calls made at once are still
    published together (each was a round trip of its own: 20 times the CPU per call)."""
    app = asyncq.App(unique("mwbatch"), broker=redis_url, middleware=[_Stamp()],
                     default_queue=unique("mwbatch"))

    @app.task
    async def noop(n: int) -> int:
        return n

    async with app:
        broker: Any = app.broker
        flushes = 0
        flush = broker._flush

        async def counting(batch: Any) -> Any:
            nonlocal flushes
            flushes += 1
            return await flush(batch)

        broker._flush = counting
        try:
            handles = await asyncio.gather(*(noop.enqueue(i) for i in range(300)))
            assert len({h.id for h in handles}) == 300
            assert await broker.queue_size(app.default_queue) == 300
            assert flushes < 30, flushes
        finally:
            await broker.delete_queue(app.default_queue)
