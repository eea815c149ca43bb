"""Pure helpers: URL masking, backoff, routing, signing, runners, the public surface."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
from typing import Any

import pytest

import asyncq
from asyncq._urls import mask_url
from asyncq.backoff import retry_delay
from asyncq.routing import Route, Router
from asyncq.signing import Signer
from asyncq.worker.runners import Runners


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
    ("amqp://user:p%40ss@host:5672/vh", "amqp://user:***@host:5672/vh"),
    ("rediss://token@host/0", "rediss://***@host/0"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("memory://", "memory://"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_app_repr_and_errors_never_show_the_password() -> None:
    app = asyncq.App("masked", broker="redis://:hunter2hunter2@127.0.0.1:1/0")
    assert "hunter2" not in repr(app)
    assert "hunter2" not in repr(app.broker)
    assert "hunter2" not in repr(app.backend)


def test_a_redis_url_that_decodes_replies_is_refused_with_the_password_masked() -> None:
    url = "redis://:hunter2hunter2@127.0.0.1:1/0?decode_responses=true"
    with pytest.raises(asyncq.ConfigurationError, match="decode_responses") as caught:
        asyncq.App("decodes", broker=url)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(asyncq.ConfigurationError, match="decode_responses"):
        asyncq.App("decodes", broker="memory://x", backend="redis://h/0?decode_responses=yes")
    # redis-py hands the string on: "false" decodes too
    with pytest.raises(asyncq.ConfigurationError, match="decode_responses"):
        asyncq.App("decodes", broker="redis://127.0.0.1:1/0?decode_responses=false")
    asyncq.App("raw", broker="redis://127.0.0.1:1/0?decode_responses=&protocol=2")


def test_backoff_grows_is_capped_and_jitters() -> None:
    assert [retry_delay(n, base=1, cap=10, jitter=False) for n in range(6)] == [
        1, 2, 4, 8, 10, 10]
    rng = random.Random(7)
    draws = [retry_delay(3, base=1, cap=10, jitter=True, rng=rng) for _ in range(200)]
    assert all(0 <= d <= 8 for d in draws)
    assert len({round(d, 6) for d in draws}) > 150
    with pytest.raises(ValueError, match="non-negative"):
        retry_delay(-1)


def test_router_exact_beats_pattern_and_patterns_keep_order() -> None:
    router = Router({
        "shop.tasks.*": "shop",
        "shop.tasks.send_email": {"queue": "emails", "routing_key": "mail.out"},
        "shop.*": {"queue": "other", "exchange": "events"},
    })
    assert router.route("shop.tasks.send_email") == Route("emails", "mail.out", None)
    assert router.route("shop.tasks.add") == Route("shop")
    assert router.route("shop.images.resize") == Route("other", None, "events")
    assert router.route("billing.charge") is None
    with pytest.raises(asyncq.ConfigurationError, match="unknown keys"):
        Router({"x": {"queue": "q", "colour": "red"}})


async def test_routes_apply_with_call_options_winning() -> None:
    app = asyncq.App("routes", broker="memory://routes",
                     task_routes={"mail.*": "emails"})

    @app.task(name="mail.send", queue="ignored-by-route")
    async def send() -> None: ...

    @app.task(name="math.add", queue="math")
    async def add() -> None: ...

    assert app.queue_for(send) == "emails"
    assert app.queue_for(add) == "math"
    async with app:
        await send.enqueue()
        await send.options(queue="urgent").enqueue()
        await add.enqueue()
        sizes = {q: await app.broker.queue_size(q) for q in ("emails", "urgent", "math")}
    assert sizes == {"emails": 1, "urgent": 1, "math": 1}


def test_signing_round_trip_rotation_and_refusals() -> None:
    old = Signer({"k1": "0123456789abcdef-one"})
    both = Signer({"k2": "0123456789abcdef-two", "k1": "0123456789abcdef-one"}, "k2")
    signed_old = old.sign(b"payload")
    assert both.verify(signed_old) == b"payload"  # workers accept the old key while rotating
    assert both.verify(both.sign(b"new")) == b"new"
    with pytest.raises(asyncq.SignatureError, match="unknown signing key id 'k2'"):
        old.verify(both.sign(b"new"))
    tampered = signed_old[:-1] + b"X"
    with pytest.raises(asyncq.SignatureError, match="bad signature"):
        old.verify(tampered)
    with pytest.raises(asyncq.SignatureError, match="not signed"):
        old.verify(b"payload")
    with pytest.raises(asyncq.ConfigurationError, match="shorter"):
        Signer({"k": "short"})
    assert "0123456789" not in repr(both)


def test_public_names_are_sorted_and_importable() -> None:
    assert asyncq.__all__ == sorted(asyncq.__all__)
    for name in asyncq.__all__:
        assert getattr(asyncq, name) is not None


def test_error_tree() -> None:
    for name in ("BrokerUnavailable", "PublishError", "DecodeError", "SignatureError",
                 "MessageTooLarge", "SerializationError", "ResultTimeout", "TaskFailed",
                 "TaskRejected", "TaskCancelled", "ConfigurationError", "TaskNotRegistered"):
        assert issubclass(getattr(asyncq, name), asyncq.AsyncqError), name
    assert issubclass(asyncq.ResultTimeout, TimeoutError)
    assert not issubclass(asyncq.Retry, asyncq.AsyncqError)


def test_runs_by_size_cut_in_order_within_the_limit() -> None:
    from asyncq._batch import runs_by_size

    sizes = [5, 5, 5, 20, 1, 1, 9, 0]
    runs = runs_by_size(sizes, 10)
    assert [sizes[r] for r in runs] == [[5, 5], [5], [20], [1, 1], [9, 0]]
    assert runs_by_size([], 10) == []
    assert runs_by_size([3], 10) == [slice(0, 1)]
    assert [sizes[r] for r in runs_by_size(sizes, 10, 1)] == [[n] for n in sizes]
    ones = [1] * 5
    assert [ones[r] for r in runs_by_size(ones, 10, 2)] == [[1, 1], [1, 1], [1]]


_seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen")


async def test_runners_bound_what_runs_and_each_job_starts_in_a_clean_context() -> None:
    gate = asyncio.Event()
    ran: list[tuple[int, str]] = []
    now = peak = 0

    async def handle(job: Any) -> None:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        ran.append((job, _seen.get("unset")))
        _seen.set(f"left by {job}")  # never reset: must not reach the next job
        await gate.wait()
        now -= 1

    runners = Runners(2, handle)
    runners.start()
    runners.jobs.extend(range(5))
    runners.wake()
    await asyncio.sleep(0.01)
    assert (now, len(runners), len(runners.jobs)) == (2, 2, 3)  # two run, three wait
    gate.set()
    await runners.wait_drained()
    await runners.wait_idle()
    assert peak == 2
    assert sorted(ran) == [(i, "unset") for i in range(5)]
    await runners.close(1.0, asyncio.Event(), lambda: None)


async def test_idle_runners_all_take_jobs_that_wait_and_one_runs_jobs_that_do_not() -> None:
    """wake() wakes one idle runner, and the rest in the loop's next step for the jobs
    still waiting: jobs that wait all run at once (up to the runner count); jobs that
    finish without waiting are run by the first runner, the others stay asleep."""
    gate = asyncio.Event()
    now = peak = 0
    ran_by: list[asyncio.Task[Any] | None] = []

    async def handle(job: Any) -> None:
        nonlocal now, peak
        ran_by.append(asyncio.current_task())
        if job == "quick":
            return
        now += 1
        peak = max(peak, now)
        await gate.wait()
        now -= 1

    runners = Runners(6, handle)
    runners.start()
    await asyncio.sleep(0.01)  # all six idle, each waiting for a job
    runners.jobs.extend(range(8))
    runners.wake()
    await asyncio.sleep(0.01)
    assert (now, len(runners.jobs)) == (6, 2)  # every runner took one
    gate.set()
    await runners.wait_drained()
    await runners.wait_idle()
    assert (peak, len(ran_by)) == (6, 8)
    ran_by.clear()
    loop = asyncio.get_running_loop()
    futures = 0
    make = loop.create_future

    def counted() -> asyncio.Future[Any]:
        nonlocal futures
        futures += 1
        return make()

    loop.create_future = counted  # type: ignore[method-assign]
    try:
        runners.jobs.extend(["quick"] * 20)
        runners.wake()
        for _ in range(3):  # a few steps of the loop (making no future of their own)
            await asyncio.sleep(0)
    finally:
        del loop.create_future
    await runners.wait_drained()
    await runners.wait_idle()
    assert len(ran_by) == 20
    assert len(set(ran_by)) == 1  # one runner took them all, one after the other
    assert futures == 1  # it alone woke, and waits again: the five others slept on
    await runners.close(1.0, asyncio.Event(), lambda: None)


async def test_a_cancelled_job_leaves_its_runner_replaced() -> None:
    cancelled: list[int] = []

    async def handle(job: Any) -> None:
        try:
            await asyncio.sleep(0 if job else 10)
        except asyncio.CancelledError:
            cancelled.append(job)
            raise

    runners = Runners(1, handle)
    runners.start()
    runners.jobs.append(0)
    runners.wake()
    await asyncio.sleep(0.01)
    (runner,) = runners.busy
    runner.cancel()  # what revoke(terminate=True) does
    await asyncio.sleep(0.01)
    assert cancelled == [0]
    assert not runners.busy
    runners.jobs.extend([1, 2])
    runners.wake()
    await runners.wait_drained()
    await runners.wait_idle()
    assert cancelled == [0]  # the fresh runner ran the next two
    await runners.close(1.0, asyncio.Event(), lambda: None)


async def test_a_job_that_swallows_its_cancellation_leaves_no_cancel_behind() -> None:
    seen: list[int] = []

    async def handle(job: Any) -> None:
        if job == 0:
            with contextlib.suppress(asyncio.CancelledError):  # the task ignores it
                await asyncio.sleep(10)
            return
        task = asyncio.current_task()
        assert task is not None
        seen.append(task.cancelling())  # what cancelled_by_caller() reads

    runners = Runners(1, handle)
    runners.start()
    runners.jobs.append(0)
    runners.wake()
    await asyncio.sleep(0.01)
    (runner,) = runners.busy
    runner.cancel()  # revoke(terminate=True)
    await asyncio.sleep(0.01)
    runners.jobs.append(1)
    runners.wake()
    await runners.wait_drained()
    await runners.wait_idle()
    assert seen == [0]  # the next job does not look cancelled by the worker
    await runners.close(1.0, asyncio.Event(), lambda: None)


async def test_runners_close_abandons_a_job_past_the_timeout_and_ends() -> None:
    abandoning = False
    handed_back: list[int] = []

    async def handle(job: Any) -> None:  # as the worker's handler: hand back, then end
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            handed_back.append(job)
            if not abandoning:
                raise

    def abandon() -> None:
        nonlocal abandoning
        abandoning = True

    runners = Runners(2, handle)
    runners.start()
    runners.jobs.append(7)
    runners.wake()
    await asyncio.sleep(0.01)
    await asyncio.wait_for(runners.close(0.05, asyncio.Event(), abandon), 2)
    assert handed_back == [7]
    assert not runners.busy
