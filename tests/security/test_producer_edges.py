"""Item 1 of issue 13: one bad call fails alone, at the call, with ValueError; every
other call of the same burst is sent (Redis coalesces a burst into one batch)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import asyncq
from asyncq._outgoing import MAX_DELAY
from asyncq.brokers import Outgoing

BAD: list[dict[str, Any]] = [
    {"countdown": math.inf}, {"countdown": -math.inf}, {"countdown": math.nan},
    {"countdown": "10"}, {"countdown": MAX_DELAY * 2}, {"countdown": True},
    {"eta": math.inf}, {"eta": math.nan}, {"eta": "tomorrow"},
    {"eta": dt.datetime(2020, 1, 1)},  # naive
    {"eta": dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 20)},
    {"expires": math.inf}, {"expires": math.nan}, {"expires": b"1"},
    {"expires": MAX_DELAY * 2}, {"countdown": 1, "eta": 2.0},
    {"countdown": -MAX_DELAY * 2}, {"countdown": -1.797693134862316e305},  # (overflowed)
    {"eta": dt.datetime(1900, 1, 1, tzinfo=dt.UTC)}, {"eta": -1e300},
    {"task_id": ""}, {"task_id": "has space"}, {"task_id": "x" * 200},
]


@pytest.fixture
async def app(redis_url: str, unique: Callable[[str], str],
              redis_cleanup: Callable[[str], None]) -> AsyncIterator[asyncq.App]:
    queue = unique("edge")
    redis_cleanup(queue)
    application = asyncq.App(unique("edge"), broker=redis_url, default_queue=queue)
    async with application:
        yield application


@pytest.mark.parametrize("bad", BAD, ids=[str(sorted(b))[:40] for b in BAD])
async def test_one_bad_option_fails_alone_in_a_burst(app: asyncq.App, bad: dict[str, Any]
                                                     ) -> None:
    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    calls = [add.enqueue(i, i) for i in range(20)]
    calls.insert(7, add.options(**bad).enqueue(1, 1))
    calls += [add.options(countdown=5).enqueue(i, i) for i in range(5)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1
    assert outcomes[7] is errors[0]
    assert isinstance(errors[0], ValueError), repr(errors[0])
    assert await app.broker.queue_size(app.default_queue) == 20
    assert await app.broker.scheduled_size(app.default_queue) == 5


async def test_a_bad_outgoing_fails_alone_inside_the_publisher(app: asyncq.App) -> None:
    """Even an Outgoing built past the producer's checks cannot fail its batch."""
    queue = app.default_queue
    good = [Outgoing(f"g{i}", queue, b"body-%d" % i) for i in range(10)]
    delayed = [Outgoing(f"d{i}", queue, b"later-%d" % i, eta=2e9) for i in range(3)]
    bad = [Outgoing("b1", queue, b"x", eta=math.inf), Outgoing("b2", queue, b"y", eta=math.nan),
           Outgoing("b3", queue, "not bytes", eta=None)]  # type: ignore[arg-type]
    mixed = [*good[:5], bad[0], *delayed, bad[1], *good[5:], bad[2]]
    outcomes = await asyncio.gather(*(app.broker.publish(m) for m in mixed),
                                    return_exceptions=True)
    failed = [m.id for m, o in zip(mixed, outcomes, strict=True) if isinstance(o, BaseException)]
    assert failed == ["b1", "b2", "b3"]
    assert all(isinstance(o, ValueError) for o in outcomes if isinstance(o, BaseException))
    assert await app.broker.queue_size(queue) == 10
    assert await app.broker.scheduled_size(queue) == 3


@pytest.mark.amqp
async def test_a_bad_outgoing_fails_alone_on_rabbitmq(amqp_url: str,
                                                      unique: Callable[[str], str]) -> None:
    queue = unique("edge")
    app = asyncq.App(unique("edge"), broker=amqp_url, default_queue=queue)
    async with app:
        try:
            good = [Outgoing(f"g{i}", queue, b"body-%d" % i) for i in range(10)]
            bad = [Outgoing("b1", queue, b"x", eta=math.inf),
                   Outgoing("b2", queue, b"y", eta=math.nan)]
            mixed = [*good[:5], *bad, *good[5:]]
            outcomes = await asyncio.gather(*(app.broker.publish(m) for m in mixed),
                                            return_exceptions=True)
            failed = {m.id: o for m, o in zip(mixed, outcomes, strict=True) if o is not None}
            assert sorted(failed) == ["b1", "b2"]
            assert all(isinstance(o, ValueError) for o in failed.values())
            for _ in range(50):
                if await app.broker.queue_size(queue) == 10:
                    break
                await asyncio.sleep(0.1)
            assert await app.broker.queue_size(queue) == 10
        finally:
            await app.broker.delete_queue(queue)


async def test_a_countdown_or_eta_in_the_past_is_sent_due_now(app: asyncq.App) -> None:
    """Within ten years past, a negative countdown or a past eta is no error: the task
    is due at once (and its SCHEDULED record keeps the usual TTL)."""
    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    handles = [await add.options(countdown=-5).enqueue(1, 1),
               await add.options(eta=dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
                                 ).enqueue(2, 2)]
    assert await app.broker.queue_size(app.default_queue) == 2
    assert await app.broker.scheduled_size(app.default_queue) == 0
    assert [await h.state() for h in handles] == [asyncq.TaskState.SCHEDULED] * 2
