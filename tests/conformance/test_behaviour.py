"""Behaviour every broker must show: memory, Redis and RabbitMQ alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import asyncq
from asyncq.brokers import Outgoing

MakeApp = Callable[..., asyncq.App]


async def test_round_trip_and_states(make_app: MakeApp) -> None:
    app = make_app()

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    async with app:
        handle = await add.enqueue(2, 3)
        assert await handle.state() is asyncq.TaskState.PENDING
        assert not await handle.ready()
        async with asyncq.Worker(app, concurrency=4):
            assert await handle.get(timeout=20) == 5
            assert await handle == 5
        assert await handle.state() is asyncq.TaskState.SUCCESS
        assert await handle.ready()
        assert await handle.successful()
        assert not await handle.failed()
        await handle.forget()
        assert await handle.state() is asyncq.TaskState.PENDING


async def test_failure_carries_remote_type_message_and_traceback(make_app: MakeApp) -> None:
    app = make_app()

    class PaymentDeclined(Exception):
        pass

    @app.task
    async def charge(amount: int) -> None:
        raise PaymentDeclined(f"card declined for {amount}")

    async with app, asyncq.Worker(app, concurrency=2):
        handle = await charge.enqueue(42)
        with pytest.raises(asyncq.TaskFailed) as caught:
            await handle.get(timeout=20)
        assert await handle.failed()
    error = caught.value
    assert isinstance(error, asyncq.AsyncqError)
    assert not isinstance(error, PaymentDeclined)
    assert error.exc_type.endswith("PaymentDeclined")
    assert error.exc_message == "card declined for 42"
    assert error.traceback is not None
    assert 'raise PaymentDeclined(f"card declined for {amount}")' in error.traceback
    assert (await handle.info()).traceback == error.traceback  # type: ignore[union-attr]


async def test_result_timeout_is_a_timeout_error(make_app: MakeApp) -> None:
    app = make_app()

    @app.task
    async def never_run() -> None: ...

    async with app:
        handle = await never_run.enqueue()
        with pytest.raises(asyncq.ResultTimeout):
            await handle.get(timeout=0.3)
        with pytest.raises(TimeoutError):
            await handle.get(timeout=0.1)


async def test_handle_from_id_alone_in_another_app(make_app: MakeApp,
                                                   id_only_handles: bool) -> None:
    producer, elsewhere = make_app(), make_app()
    if not id_only_handles:
        pytest.skip("documented limit of AMQP RPC results (tests/integration/test_amqp_rpc.py)")

    @producer.task
    async def square(x: int) -> int:
        return x * x

    async with producer, elsewhere, asyncq.Worker(producer, concurrency=2):
        task_id = (await square.enqueue(7)).id
        assert await elsewhere.result(task_id).get(timeout=20) == 49
        assert await elsewhere.result(task_id).state() is asyncq.TaskState.SUCCESS


async def test_countdown_runs_later_not_sooner(make_app: MakeApp) -> None:
    app = make_app()
    ran_at: list[float] = []

    @app.task
    async def stamp() -> None:
        ran_at.append(asyncio.get_running_loop().time())

    async with app, asyncq.Worker(app, concurrency=2):
        sent = asyncio.get_running_loop().time()
        handle = await stamp.options(countdown=0.8).enqueue()
        await asyncio.sleep(0.4)
        assert ran_at == []
        await handle.get(timeout=20)
    assert ran_at[0] - sent >= 0.75


async def test_concurrency_and_prefetch_are_bounded(make_app: MakeApp) -> None:
    app = make_app()
    running = peak = 0

    @app.task
    async def busy(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return n

    async with app:
        handles = await app.enqueue_many([busy.s(i) for i in range(120)])
        async with asyncq.Worker(app, concurrency=5, prefetch=3) as worker:
            results = []
            for handle in handles:
                stats = worker.statistics()
                assert stats.held <= 8
                assert stats.running <= 5
                results.append(await handle.get(timeout=30))
    assert results == list(range(120))
    assert peak == 5


async def test_unknown_task_goes_to_dead_letters_and_fails_the_handle(
        make_app: MakeApp, queue: str, id_only_handles: bool) -> None:
    app = make_app()

    @app.task
    async def ok() -> str:
        return "still working"

    async with app, asyncq.Worker(app, concurrency=2):
        message = asyncq.Message("forged-0001", "os.system", ["echo owned"], {})
        await app.broker.publish(Outgoing("forged-0001", queue, app.codec.encode_message(message)))
        if id_only_handles:  # the id came from the raw message, not from enqueue
            with pytest.raises(asyncq.TaskRejected, match=r"unknown task 'os\.system'"):
                await app.result("forged-0001").get(timeout=20)
        assert await (await ok.enqueue()).get(timeout=20) == "still working"
        letters = await _wait_dead(app, queue, 1)
    assert letters[0].task_id == "forged-0001"
    assert "unknown task" in letters[0].reason


async def test_bad_inputs_are_dead_lettered_and_the_worker_goes_on(
        make_app: MakeApp, queue: str, id_only_handles: bool) -> None:
    app = make_app()

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    bad_arity = asyncq.Message("arity-0001", add.name, [1, 2, 3], {})
    bodies = {
        b"\xc1 not msgpack": "undecodable",
        asyncq.Message("trunc-0001", add.name, [1, 2], {}).encode()[:-3]: "undecodable",
        app.codec.encode_message(bad_arity): "arguments do not match",
    }
    async with app, asyncq.Worker(app, concurrency=2):
        for n, body in enumerate(bodies):
            await app.broker.publish(Outgoing(f"raw-{n}", queue, body))
        if id_only_handles:
            with pytest.raises(asyncq.TaskRejected, match="arguments do not match"):
                await app.result("arity-0001").get(timeout=20)
        assert await (await add.enqueue(1, 2)).get(timeout=20) == 3
        letters = await _wait_dead(app, queue, len(bodies))
    reasons = sorted(letter.reason for letter in letters)
    for expected in bodies.values():
        assert any(expected in reason for reason in reasons), reasons
    assert {letter.body for letter in letters} == set(bodies)  # the original bytes are kept


async def test_serialization_error_at_enqueue_sends_nothing(make_app: MakeApp,
                                                            queue: str) -> None:
    app = make_app()

    @app.task
    async def store(name: str, blob: Any) -> None: ...

    async with app:
        with pytest.raises(asyncq.SerializationError, match="'blob'"):
            await store.enqueue("x", blob=object())
        assert await app.broker.queue_size(queue) == 0


async def test_crashed_consumer_messages_are_redelivered(make_app: MakeApp, queue: str,
                                                         broker_url: str) -> None:
    crashed, survivor = make_app(), make_app()
    seen: list[int] = []

    @survivor.task(name="crash.work")
    async def work(n: int) -> int:
        seen.append(asyncq.current_request().delivery_count)
        return n * 10

    @crashed.task(name="crash.work")
    async def work_elsewhere(n: int) -> int:
        raise AssertionError("the crashed consumer never runs anything")

    async with survivor:
        handle = await work.enqueue(4)
        await crashed.connect()
        consumer = crashed.broker.consumer([queue], prefetch=1, lease=0.5)
        taken = await _fetch_one(consumer)
        assert taken.queue == queue
        await _crash(crashed, consumer, broker_url, [taken])
        async with asyncq.Worker(survivor, concurrency=2, lease=0.5):
            assert await handle.get(timeout=30) == 40
    assert seen
    assert seen[-1] >= 2


async def test_graceful_stop_finishes_running_and_hands_back_the_rest(
        make_app: MakeApp) -> None:
    app = make_app()
    finished: list[int] = []

    @app.task
    async def step(n: int) -> int:
        await asyncio.sleep(0.5)
        finished.append(n)
        return n

    async with app:
        handles = [await step.enqueue(n) for n in range(6)]
        worker = asyncq.Worker(app, concurrency=1, prefetch=5, shutdown_timeout=10)
        async with worker:
            await _until(lambda: worker.statistics().running == 1)
            await asyncio.sleep(0.1)  # one running, the rest buffered in this worker
            worker.stop()
        assert len(finished) == 1  # the running one completed; nothing else started
        assert await handles[finished[0]].get(timeout=5) == finished[0]
        async with asyncq.Worker(app, concurrency=6):
            assert [await h.get(timeout=30) for h in handles] == list(range(6))


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls a worker's statistics
            await asyncio.sleep(0.01)


async def _wait_dead(app: asyncq.App, queue: str, count: int) -> list[Any]:
    for _ in range(200):
        letters = await app.broker.dead_letters(queue)
        if len(letters) >= count:
            return letters
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} dead letters, found {len(letters)}")


async def _fetch_one(consumer: Any) -> Any:
    for _ in range(50):
        got = await consumer.fetch(1, 0.5)
        if got:
            return got[0]
    raise AssertionError("nothing to fetch")


async def _crash(app: asyncq.App, consumer: Any, broker_url: str, held: list[Any]) -> None:
    """Lose the consumer without acking, as a killed worker would."""
    if broker_url.startswith("memory"):  # in one process, the closest thing to dying
        await consumer.requeue(held, counted=True)
    elif broker_url.startswith("amqp"):
        await app.broker.close()  # the channel dies with its unacked delivery
    # Redis: the entry stays pending under a consumer that never comes back


async def test_hand_back_keeps_the_delivery_count(make_app: MakeApp, queue: str,
                                                  broker_url: str) -> None:
    """A hand-back (shutdown, a suspect running alone) is not a failed delivery."""
    crashed, app = make_app(), make_app()
    seen: list[int] = []

    @app.task(name="handback.work")
    async def work(n: int) -> int:
        seen.append(asyncq.current_request().delivery_count)
        return n

    async with app:
        handle = await work.enqueue(7)
        await crashed.connect()
        consumer = crashed.broker.consumer([queue], prefetch=1, lease=0.5)
        taken = await _fetch_one(consumer)
        assert taken.delivery_count == 1
        await consumer.requeue([taken])
        again = await _fetch_one(consumer)
        assert again.delivery_count == 1
        await _crash(crashed, consumer, broker_url, [again])  # a failed delivery: it counts
        survivor = app.broker.consumer([queue], prefetch=1, lease=0.5)
        third = await _fetch_one(survivor)
        assert third.delivery_count == 2
        await survivor.requeue([third])
        fourth = await _fetch_one(survivor)
        assert fourth.delivery_count == 2
        await survivor.requeue([fourth], counted=True)  # the worker failed it: it counts
        await survivor.close()
        async with asyncq.Worker(app, concurrency=2, lease=0.5):
            assert await handle.get(timeout=30) == 7
    assert seen == [3]


async def test_a_requeued_dead_letter_runs_and_its_result_replaces_the_rejection(
        make_app: MakeApp, queue: str) -> None:
    old, new = make_app(), make_app()  # a deploy: the old worker lacks the task

    @old.task(name="deploy.ok")
    async def unused() -> str:
        return "never"

    @new.task(name="deploy.new")
    async def brand_new(n: int) -> int:
        return n + 1

    async with old, new:
        handle = await brand_new.enqueue(41)  # the new producer ships first...
        async with asyncq.Worker(old, concurrency=2):  # ...and an old worker rejects it
            with pytest.raises(asyncq.TaskRejected, match=r"unknown task 'deploy\.new'"):
                await handle.get(timeout=20)
            [letter] = await _wait_dead(old, queue, 1)
        assert await new.broker.requeue_dead(queue, [letter.ref]) == 1
        async with asyncq.Worker(new, concurrency=2):
            assert await _until_value(handle) == 42
        assert await handle.successful()
    del unused


async def _until_value(handle: Any, timeout: float = 20.0) -> Any:
    """The value once the handle's record is a success (a rejection came first)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await handle.get(timeout=timeout)
            except asyncq.TaskRejected:
                await asyncio.sleep(0.05)


async def test_queue_size_counts_waiting_messages_only(make_app: MakeApp, queue: str) -> None:
    app = make_app()

    @app.task
    async def later(n: int) -> int:
        return n

    async with app:
        for n in range(3):
            await later.enqueue(n)
        await later.options(countdown=60).enqueue(9)
        consumer = app.broker.consumer([queue], prefetch=1, lease=30)
        await _fetch_one(consumer)  # in flight: no longer waiting
        await _until_async(lambda: app.broker.queue_size(queue), 2)
        await consumer.close()


async def test_workers_of_different_apps_share_a_queue(make_app: MakeApp) -> None:
    runs: list[int] = []
    apps = [make_app(), make_app()]
    for app in apps:
        @app.task(name="shared.work")
        async def work(n: int) -> int:
            runs.append(n)
            await asyncio.sleep(0.01)
            return n

    producer = apps[0]
    async with apps[0], apps[1]:
        handles = [await producer.send_task("shared.work", args=(n,)) for n in range(40)]
        async with asyncq.Worker(apps[0], concurrency=4), asyncq.Worker(apps[1], concurrency=4):
            assert [await h.get(timeout=30) for h in handles] == list(range(40))
    assert sorted(runs) == list(range(40))  # each message ran once, not once per app


async def test_one_worker_serves_several_queues(make_app: MakeApp, queue: str) -> None:
    app = make_app()
    other = f"{queue}-b"

    @app.task
    async def here(n: int) -> int:
        return n

    @app.task(queue=other)
    async def there(n: int) -> int:
        return -n

    async with app:
        try:
            handles = [await here.enqueue(n) for n in range(20)]
            handles += [await there.enqueue(n) for n in range(20)]
            async with asyncq.Worker(app, queues=[queue, other], concurrency=8):
                results = [await h.get(timeout=20) for h in handles]
        finally:
            await app.broker.delete_queue(other)
    assert results == list(range(20)) + [-n for n in range(20)]


async def _until_async(read: Callable[[], Any], expected: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while (value := await read()) != expected:  # noqa: ASYNC110 - polls the broker
            await asyncio.sleep(0.02)
    assert value == expected
