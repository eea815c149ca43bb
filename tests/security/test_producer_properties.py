"""Property tests over the producer API's options (issue 13): every call either enqueues
or raises ValueError, TypeError or SerializationError, never anything else."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import asyncq
from asyncq.testing import use_memory

ALLOWED = (ValueError, TypeError, asyncq.SerializationError)

anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300), st.binary(max_size=50),
    st.datetimes(timezones=st.one_of(st.none(), st.just(dt.UTC))),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=3),
)
seconds = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                    st.just(math.inf), st.just(10**20), anything)
names = st.one_of(st.text(max_size=250), st.from_regex(r"[A-Za-z0-9_.:\-]{1,40}", fullmatch=True),
                  anything)
header_values = st.recursive(anything, lambda inner: st.lists(inner, max_size=3), max_leaves=8)
options = st.fixed_dictionaries({}, optional={
    "countdown": seconds, "eta": seconds, "expires": seconds, "task_id": names,
    "queue": names, "priority": anything,
    "headers": st.one_of(st.dictionaries(st.one_of(st.text(max_size=10), st.integers()),
                                         header_values, max_size=3), anything),
})

app = asyncq.App("props", broker="memory://props")


@app.task
async def echo(value: object) -> None:
    return None


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opts=options, arg=anything)
@example(opts={"countdown": -1.797693134862316e305}, arg=None)  # (its SCHEDULED record's TTL)
def test_every_call_enqueues_or_raises_a_documented_error(opts: dict[str, Any],
                                                          arg: object) -> None:
    async def call() -> None:
        with use_memory(app):
            async with app:
                handle = await echo.options(**opts).enqueue(arg)
                queue = opts.get("queue") or app.queue_for(echo)
                sent = (await app.broker.queue_size(queue)
                        + await app.broker.scheduled_size(queue))
                assert sent == 1, (handle.id, opts)

    with contextlib.suppress(*ALLOWED):
        asyncio.run(call())


def _on_broker(url: str, opts: dict[str, Any], arg: object) -> None:
    async def call() -> None:
        real = asyncq.App("props-real", broker=url, default_queue="props-real")

        @real.task(name="echo")
        async def echo_real(value: object) -> None:
            return None

        async with real:
            try:
                await echo_real.options(**opts).enqueue(arg)
            finally:  # the only valid queue the strategy names
                await real.broker.delete_queue("props-real")

    with contextlib.suppress(*ALLOWED):
        asyncio.run(call())


real_options = st.fixed_dictionaries({}, optional={
    "countdown": seconds, "eta": seconds, "expires": seconds, "task_id": names,
    "queue": st.one_of(st.none(), st.just("props-real"), names.filter(
        lambda n: not isinstance(n, str) or asyncq._names.queue_error(n) is not None)),
    "priority": anything,
    "headers": st.one_of(st.dictionaries(st.text(max_size=10), header_values, max_size=3),
                         anything),
})


@settings(max_examples=60, deadline=None)
@given(opts=real_options, arg=anything)
def test_on_redis_every_call_enqueues_or_raises_a_documented_error(
        redis_url: str, opts: dict[str, Any], arg: object) -> None:
    _on_broker(redis_url, opts, arg)


@settings(max_examples=60, deadline=None)
@given(opts=real_options, arg=anything)
def test_on_rabbitmq_every_call_enqueues_or_raises_a_documented_error(
        amqp_url: str, opts: dict[str, Any], arg: object) -> None:
    _on_broker(amqp_url, opts, arg)
