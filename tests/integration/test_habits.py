"""Celery habits on a real Redis: request args, app-wide defaults and hooks, retry
counts as Celery counts them, and plain ``def`` tasks in the worker's thread pool."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import asyncq
from asyncq.middleware import overrides
from asyncq.middleware.hooks import AppHooks


@pytest.fixture
def names(redis_url: str, unique: Callable[[str], str],
          redis_cleanup: Callable[[str], None]) -> tuple[str, str]:
    queue = unique("habits")
    redis_cleanup(queue)
    return unique("habits"), queue


@pytest.fixture
async def app(redis_url: str, names: tuple[str, str]) -> AsyncIterator[asyncq.App]:
    app = asyncq.App(names[0], broker=redis_url, default_queue=names[1])
    yield app
    await app.close()


async def test_hooks_see_the_call_arguments_and_celery_retry_counts(app: asyncq.App) -> None:
    seen: list[tuple[str, Any, Any, int, int]] = []

    async def on_retry(request: asyncq.Request, exc: BaseException, delay: float) -> None:
        seen.append(("retry", request.args, dict(request.kwargs), request.retries,
                     request.max_retries))

    def on_failure(request: asyncq.Request, exc: BaseException) -> None:  # a plain def
        seen.append(("failure", request.args, dict(request.kwargs), request.retries,
                     request.max_retries))

    inside: list[tuple[int, int, bool]] = []

    @app.task(retries=2, retry_on=(ValueError,), retry_backoff=0.01, on_retry=on_retry,
              on_failure=on_failure)
    async def flaky(a: int, *, b: str) -> None:
        request = asyncq.current_request()
        inside.append((request.retries, request.attempt, request.is_last_attempt))
        raise ValueError("no")

    async with app, asyncq.Worker(app, concurrency=2):
        handle = await flaky.enqueue(7, b="x")
        with pytest.raises(asyncq.TaskFailed):
            await handle.get(timeout=20)
    assert inside == [(0, 0, False), (1, 1, False), (2, 2, True)]
    assert seen == [("retry", (7,), {"b": "x"}, 0, 2), ("retry", (7,), {"b": "x"}, 1, 2),
                    ("failure", (7,), {"b": "x"}, 2, 2)]


async def test_task_defaults_apply_unless_the_task_sets_the_option(
        redis_url: str, names: tuple[str, str]) -> None:
    app = asyncq.App(names[0], broker=redis_url, default_queue=names[1],
                     task_defaults={"retries": 3, "timeout": 30.0, "retry_on": (KeyError,)})

    @app.task
    async def plain() -> None: ...

    @app.task(retries=0)
    async def own() -> None: ...

    assert (plain.config.retries, plain.config.timeout, plain.config.retry_on) == (
        3, 30.0, (KeyError,))
    assert (own.config.retries, own.config.timeout) == (0, 30.0)
    for bad in ({"retrys": 1}, {"queue": "q"}, {"name": "n"}):
        with pytest.raises(asyncq.ConfigurationError):
            asyncq.App(names[0], broker=redis_url, task_defaults=bad)


async def test_app_hooks_run_for_every_task_and_only_those_given(
        redis_url: str, names: tuple[str, str]) -> None:
    failures: list[tuple[str, tuple[Any, ...], str]] = []

    async def alert(request: asyncq.Request, exc: BaseException) -> None:
        failures.append((request.task, request.args, str(exc)))

    hooks = AppHooks(on_failure=alert)
    assert isinstance(hooks, AppHooks)
    assert overrides(hooks, "on_failure")
    assert not overrides(hooks, "on_success")  # successes pay nothing
    app = asyncq.App(names[0], broker=redis_url, default_queue=names[1], middleware=[hooks])

    @app.task(name="boom")
    async def boom(n: int) -> None:
        raise RuntimeError(f"boom {n}")

    @app.task(name="fine")
    async def fine(n: int) -> int:
        return n

    async with app, asyncq.Worker(app, concurrency=2):
        assert await (await fine.enqueue(1)).get(timeout=20) == 1
        with pytest.raises(asyncq.TaskFailed):
            await (await boom.enqueue(5)).get(timeout=20)
    assert failures == [("boom", (5,), "boom 5")]


async def test_sync_tasks_run_in_a_bounded_thread_pool(app: asyncq.App) -> None:
    loop_thread = threading.get_ident()
    active = [0]
    most = [0]
    lock = threading.Lock()

    @app.task
    def resize(n: int) -> tuple[int, bool, str]:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        request = asyncq.current_request()  # the context reaches the thread
        return n * 2, threading.get_ident() != loop_thread, request.id

    assert resize.is_sync
    async with app, asyncq.Worker(app, concurrency=8, threads=2):
        handles = [await resize.enqueue(i) for i in range(6)]
        results = [await h.get(timeout=20) for h in handles]
    assert results == [[i * 2, True, h.id] for i, h in enumerate(handles)]
    assert most[0] == 2  # bounded by threads=2, not by concurrency=8


async def test_a_sync_task_past_its_limit_fails_and_frees_its_slot(app: asyncq.App) -> None:
    done = threading.Event()

    @app.task(timeout=0.3)
    def stuck() -> str:
        time.sleep(1.5)
        done.set()
        return "late"

    @app.task
    async def double(n: int) -> int:
        return 2 * n

    async with app, asyncq.Worker(app, concurrency=1, prefetch=0):
        started = time.monotonic()
        with pytest.raises(asyncq.TaskFailed) as caught:
            await (await stuck.enqueue()).get(timeout=20)
        assert caught.value.exc_type == "TimeoutError"
        assert time.monotonic() - started < 1.4  # recorded at the limit, not at the end
        assert await (await double.enqueue(4)).get(timeout=20) == 8  # the slot is free
    await asyncio.to_thread(done.wait, 5)  # the thread ran on to its end
    assert done.is_set()


async def test_sync_task_called_directly_runs_in_a_thread() -> None:
    app = asyncq.App("direct")

    @app.task
    def ident() -> int:
        return threading.get_ident()

    assert await ident() != threading.get_ident()


def test_generators_are_refused() -> None:
    app = asyncq.App("gen")

    def gen() -> Any:
        yield 1

    with pytest.raises(asyncq.ConfigurationError):
        app.task(gen)


async def test_compressed_messages_run_on_a_worker_without_compression(
        redis_url: str, names: tuple[str, str]) -> None:
    import zlib

    from asyncq.brokers import Outgoing
    from asyncq.compression import MARKER
    from asyncq.wire import encode_fields

    producer = asyncq.App(names[0], broker=redis_url, default_queue=names[1],
                          compression="zlib")
    consumer = asyncq.App(names[0], broker=redis_url, default_queue=names[1])
    for each in (producer, consumer):
        @each.task(name="size")
        async def size(text: str) -> int:
            return len(text)

    async with producer, consumer, asyncq.Worker(consumer, concurrency=2):
        handle = await producer.tasks["size"].enqueue("z" * 200_000)
        assert await handle.get(timeout=20) == 200_000
        # a bomb: 2 KB on the wire, 60 MB inside; refused and dead-lettered, id known
        inner = encode_fields("bomb-1", "size", ["\x00" * 60_000_000], {}, {}, {})
        bomb = MARKER + b"z" + zlib.compress(inner, 9)
        assert len(bomb) < 100_000
        await producer.broker.publish(Outgoing("bomb-1", names[1], bomb))
        with pytest.raises(asyncq.TaskRejected, match="expands beyond"):
            await producer.result("bomb-1").get(timeout=20)
        # the rejection record may be stored just before the dead letter (two steps when
        # results are not fused with the ack): give the dead letter a moment
        for _ in range(50):
            letters = await consumer.broker.dead_letters(names[1], 10)
            if letters:
                break
            await asyncio.sleep(0.1)
        assert [letter.task_id for letter in letters] == ["bomb-1"]


async def test_the_hard_limit_guard_acts_only_on_a_blocked_loop(
        redis_url: str, names: tuple[str, str]) -> None:
    from asyncq.worker.hard_limit import EXIT_HARD_LIMIT, HardLimitGuard

    exits: list[int] = []
    guard = HardLimitGuard(grace=0.3, exit=exits.append)  # a real one ends the process
    app = asyncq.App(names[0], broker=redis_url, default_queue=names[1], middleware=[guard])

    @app.task(timeout=0.2)
    async def slow_but_polite() -> None:
        await asyncio.sleep(2)  # the loop turns: the time-limit middleware handles it

    @app.task(timeout=0.2)
    async def blocking() -> str:
        time.sleep(1.2)  # noqa: ASYNC251 - blocks the loop on purpose
        return "late"

    async with app, asyncq.Worker(app, concurrency=4) as worker:
        with pytest.raises(asyncq.TaskFailed, match="time limit"):
            await (await slow_but_polite.enqueue()).get(timeout=20)
        assert exits == []
        handle = await blocking.enqueue()
        with pytest.raises(asyncq.TaskFailed) as caught:
            await handle.get(timeout=20)
        assert exits == [EXIT_HARD_LIMIT]
        assert "exceeded its hard time limit of 0.2 s" in caught.value.exc_message
        await worker.join(timeout=20)
        # the task did finish (this guard let the process live): first final writer won
        record = await app.backend.get(handle.id)
        assert record is not None
        assert record.state == asyncq.TaskState.FAILURE


def test_app_hooks_can_be_limited_to_named_tasks() -> None:
    app = asyncq.App("hooks-filter")

    @app.task(name="a")
    async def a() -> None: ...

    @app.task(name="b")
    async def b() -> None: ...

    def note(request: asyncq.Request, value: object) -> None: ...

    only_a = AppHooks(on_success=note, tasks=["a"])
    assert (only_a.applies_to(a), only_a.applies_to(b)) == (True, False)
    assert overrides(only_a, "on_success")
    assert not overrides(only_a, "on_failure")
    assert type(AppHooks(on_success=note)) is type(only_a)  # one class per combination
    assert repr(only_a) == "<AppHooks on_success>"
