"""The pieces that make workflows survive crashes, each checked on its own: chord
counting is idempotent and fires until marked sent; a resent step is not run again;
a step's retries do not stop its chain."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import asyncq
from asyncq.canvas._spec import WF, derive_id
from asyncq.canvas._store import store_for
from asyncq.records import ResultRecord, decode_record, encode_success


@pytest.mark.parametrize("backend_kind", ["memory", "redis"])
async def test_chord_counting_is_idempotent_and_fires_until_sent(
        backend_kind: str, unique: Callable[[str], str], request: pytest.FixtureRequest) -> None:
    url = (f"memory://{unique('m')}" if backend_kind == "memory"
           else str(request.getfixturevalue("redis_url")))
    app = asyncq.App(unique("count"), broker=url)
    store = store_for(app.backend)
    chord_id = f"chord-{unique('c')}"
    async with app:
        assert await store.chord_done(chord_id, 3, 0, encode_success(10, 0, "t", 0.0)) is None
        # a redelivered member: its first record stays, the count does not move
        assert await store.chord_done(chord_id, 3, 0, encode_success(99, 0, "t", 0.0)) is None
        assert await store.chord_done(chord_id, 3, 2, encode_success(30, 0, "t", 0.0)) is None
        first = await store.chord_done(chord_id, 3, 1, encode_success(20, 0, "t", 0.0))
        assert first is not None
        assert [decode_record(r).value for r in first] == [10, 20, 30]
        # the last member ran again before the callback was marked sent: fire again
        # (same derived callback id, so the callback is still recorded once)
        again = await store.chord_done(chord_id, 3, 1, encode_success(21, 0, "t", 0.0))
        assert again is not None
        assert [decode_record(r).value for r in again] == [10, 20, 30]
        await store.chord_sent(chord_id)
        assert await store.chord_done(chord_id, 3, 1, encode_success(22, 0, "t", 0.0)) is None


async def test_a_resent_step_is_not_run_again(redis_url: str, unique: Callable[[str], str],
                                             redis_cleanup: Callable[[str], None]) -> None:
    queue = unique("q")
    redis_cleanup(queue)
    app = asyncq.App(unique("resend"), broker=redis_url, default_queue=queue)
    runs: list[int] = []

    @app.task
    async def step(x: int) -> int:
        runs.append(x)
        return x + 1

    async with app, asyncq.Worker(app, concurrency=1):
        h = await asyncq.chain(step.s(1), step.s()).enqueue()
        assert await h.get(timeout=20) == 3
        assert runs == [1, 2]
        # a worker that died after sending step 2 but before acking step 1 sends it again
        step_id = derive_id(h.id, "1")
        resent = {WF: {"pos": [2, 2], "resent": True}}
        again = await step.options(task_id=step_id, headers=resent).enqueue(2)
        await again.get(timeout=20)
        await (await step.enqueue(100)).get(timeout=20)  # queued after it: it was handled
        assert runs.count(2) == 1


async def test_a_step_that_retries_keeps_its_chain_going(unique: Callable[[str], str]) -> None:
    app = asyncq.App(unique("retry"), broker=f"memory://{unique('m')}")
    attempts: list[int] = []

    @app.task(retries=2, retry_on=(ConnectionError,), retry_backoff=0.01, retry_jitter=False)
    async def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 2:
            raise ConnectionError("once")
        return x * 10

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    async with app, asyncq.Worker(app, concurrency=2):
        h = await (flaky.s(4) | add.s(2)).enqueue()
        assert await h.get(timeout=20) == 42
        assert attempts == [4, 4]


async def test_a_next_step_that_cannot_be_sent_fails_the_chain(unique: Callable[[str], str]
                                                               ) -> None:
    app = asyncq.App(unique("unsendable"), broker=f"memory://{unique('m')}")

    @app.task
    async def make_set() -> set[int]:
        return {1, 2}  # msgpack cannot carry a set into the next call

    @app.task
    async def size(items: object) -> int:
        return 0

    async with app, asyncq.Worker(app, concurrency=2):
        h = await (make_set.s() | size.s()).enqueue()
        with pytest.raises(asyncq.TaskFailed, match=r"step 1 of 2 .* could not start") as err:
            await h.get(timeout=20)
        assert err.value.matches("SerializationError")


async def test_a_step_cancelled_before_it_comes_stops_the_chain(unique: Callable[[str], str]
                                                                ) -> None:
    """What a revocation of a step not sent yet does (app.revoke stores such a record)."""
    app = asyncq.App(unique("cancel"), broker=f"memory://{unique('m')}")
    ran: list[int] = []

    @app.task
    async def step(x: int) -> int:
        ran.append(x)
        await asyncio.sleep(0.2)
        return x + 1

    async with app, asyncq.Worker(app, concurrency=2):
        h = await asyncq.chain(step.s(1), step.s(), step.s()).enqueue()
        second = (await h.ids())[1]
        await app.backend.store(second, ResultRecord(asyncq.TaskState.CANCELLED,
                                                     error_type="Revoked",
                                                     error_message="revoked"))
        with pytest.raises(asyncq.TaskCancelled, match="step 2 of 3"):
            await h.get(timeout=20)
        assert ran == [1]
