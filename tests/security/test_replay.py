"""Replay (issue 13): a signed message is bound to its queue and its signing time, a
copy of a message that already has a final outcome does not run again, and results go
only to reply queues."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import msgpack
import pytest

import asyncq
from asyncq.brokers import Outgoing
from asyncq.brokers.redis import stream_key
from asyncq.testing import worker
from asyncq.wire import encode_fields

KEYS = {"k1": "0123456789abcdef-replay-key"}


@pytest.fixture
async def app(redis_url: str, unique: Callable[[str], str],
              redis_cleanup: Callable[[str], None]) -> AsyncIterator[asyncq.App]:
    queue, other = unique("rp"), unique("rp-other")
    redis_cleanup(queue)
    redis_cleanup(other)
    application = asyncq.App(unique("rp"), broker=redis_url, default_queue=queue,
                             signing_keys=KEYS)
    application.other = other  # type: ignore[attr-defined]
    async with application:
        yield application


async def until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[misc]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_a_captured_message_does_not_run_on_another_queue_or_twice(app: asyncq.App
                                                                        ) -> None:
    runs: list[int] = []
    other: str = app.other  # type: ignore[attr-defined]

    @app.task
    async def pay(n: int) -> int:
        runs.append(n)
        return n

    handle = await pay.enqueue(1)
    # the attacker's copy: the very bytes the producer sent, read off the stream
    ((_, entries),) = await app.broker.client.xread(  # type: ignore[attr-defined]
        {stream_key(app.default_queue): "0"})
    captured = entries[0][1][b"d"]
    async with worker(app, [app.default_queue, other]):
        assert await handle.get(timeout=10) == 1
        await app.broker.publish(Outgoing(handle.id, other, captured))  # another queue
        await app.broker.publish(Outgoing(handle.id, app.default_queue, captured))  # same
        await until(lambda: _dead_count(app, other, 1))
        await asyncio.sleep(0.5)
        assert await app.broker.queue_size(app.default_queue) == 0
    assert runs == [1]  # neither copy ran
    (letter,) = await app.broker.dead_letters(other)
    assert "signed for queue" in letter.reason
    assert "a replay?" in letter.reason
    record = await app.backend.get(handle.id)
    assert record is not None
    assert record.value == 1


async def _dead_count(app: asyncq.App, queue: str, n: int) -> bool:
    return len(await app.broker.dead_letters(queue)) >= n


async def test_old_and_legacy_signatures_are_refused(app: asyncq.App) -> None:
    runs: list[str] = []

    @app.task
    async def job(tag: str) -> None:
        runs.append(tag)

    signer = app.signer
    assert signer is not None
    queue = app.default_queue
    week = app.codec.max_age

    run = uuid.uuid4().hex[:8]  # ids of this run: a record left by an earlier one would
    # make the ReplayGuard skip the copy as already done

    def signed(tag: str, *, age: float, options: dict[str, object] | None = None) -> bytes:
        return signer.sign(encode_fields(f"id-{tag}-{run}", job.name, [tag], {}, options or {},
                                         {}), queue, now=time.time() - age)

    legacy = b"AQS1" + signer.sign(msgpack.packb([1]))[4:]
    bodies = {
        "stale": signed("stale", age=week + 60),
        "fresh": signed("fresh", age=week - 60),
        # signed long ago, but due only now (a countdown): its age counts from the eta
        "delayed": signed("delayed", age=week + 60, options={"eta": time.time() - 1}),
        "legacy": legacy,
    }
    async with worker(app):
        for tag, body in bodies.items():
            await app.broker.publish(Outgoing(f"id-{tag}-{run}", queue, body))
        await until(lambda: _dead_count(app, queue, 2))
        await asyncio.sleep(0.3)
    assert sorted(runs) == ["delayed", "fresh"]
    reasons = sorted(letter.reason for letter in await app.broker.dead_letters(queue))
    assert "old AQS1 form" in reasons[0]
    assert "maximum age" in reasons[1]


def test_the_signature_covers_the_queue_and_time() -> None:
    signer = asyncq.signing.Signer(KEYS)
    body = signer.sign(b"payload", "q1", now=1000.0)
    opened = signer.open(body)
    assert (opened.payload, opened.queue, opened.signed_at) == (b"payload", "q1", 1000.0)
    moved = body.replace(b"\x02q1", b"\x02q2")  # rewrite the queue in the header
    with pytest.raises(asyncq.SignatureError, match="bad signature"):
        signer.open(moved)
    for cut in range(len(body) - 7):
        with pytest.raises(asyncq.SignatureError):
            signer.open(body[:cut])


async def test_retries_are_signed_again_and_run(app: asyncq.App) -> None:
    """A retry is a new signature for the same queue (its time is the retry's), and the
    replay guard lets it run: the record is RETRY, not final."""
    attempts: list[int] = []

    @app.task(retries=2, retry_on=(RuntimeError,), retry_backoff=0.05, retry_jitter=False)
    async def flaky() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "done"

    async with worker(app):
        assert await (await flaky.enqueue()).get(timeout=15) == "done"
    assert attempts == [0, 1, 2]
    assert await app.broker.dead_letters(app.default_queue) == []


@pytest.mark.parametrize("age", [0, -1, float("nan")])
def test_a_maximum_age_must_be_positive(age: float) -> None:
    with pytest.raises(asyncq.ConfigurationError, match="signing_max_age"):
        asyncq.App("age", broker="memory://age", signing_keys=KEYS, signing_max_age=age)


async def test_a_replay_on_another_queue_does_not_reject_the_genuine_message(
        app: asyncq.App) -> None:
    from asyncq.brokers.redis import delayed_key

    other: str = app.other  # type: ignore[attr-defined]

    @app.task
    async def later(n: int) -> int:
        return n

    handle = await later.options(countdown=1.5).enqueue(9)
    (captured,) = await app.broker.client.zrange(  # type: ignore[attr-defined]
        delayed_key(app.default_queue), 0, -1)
    async with worker(app, [app.default_queue, other]):
        await app.broker.publish(Outgoing(handle.id, other, captured))  # runs at once
        await until(lambda: _dead_count(app, other, 1))
        assert await handle.state() is not asyncq.TaskState.FAILURE  # no rejection record
        assert await handle.get(timeout=10) == 9


def test_every_signed_form_starts_with_the_prefix_an_unsigned_worker_refuses() -> None:
    from asyncq import wire

    assert asyncq.signing.MAGIC.startswith(wire._SIGNED_PREFIX)
    assert asyncq.signing.LEGACY_MAGIC.startswith(wire._SIGNED_PREFIX)
    with pytest.raises(asyncq.SignatureError, match="no signing keys"):
        wire.WireCodec().decode(asyncq.signing.Signer(KEYS).sign(b"x", "q"))
