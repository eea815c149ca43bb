"""F5 bad inputs (fast, so part of the default run): each gets its documented error,
nothing is lost (every bad message is a dead letter with a reason), the worker goes on,
and no input ever makes asyncq import anything."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator

import msgpack
import pytest
import redis

import asyncq
from asyncq import codec
from asyncq.brokers import DEAD_BODY_KEEP, Outgoing
from asyncq.results.redis import result_key

KEYS = {"k1": "0123456789abcdef-key-one"}


@pytest.fixture
async def app(redis_url: str, redis_cleanup: object) -> AsyncIterator[asyncq.App]:
    queue = f"f5-{uuid.uuid4().hex[:8]}"
    redis_cleanup(queue)  # type: ignore[operator]
    application = asyncq.App(f"f5{uuid.uuid4().hex[:6]}", broker=redis_url,
                             default_queue=queue, signing_keys=KEYS)
    yield application
    await application.close()


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


def raw(app: asyncq.App, task: str, args: object, kwargs: object = None,
        options: object = None, msg_id: str = "f5-msg", version: int = 1) -> bytes:
    wire = [version, msg_id, task, args, kwargs or {}, options or {}, {}, 0]
    return app.signer.sign(msgpack.packb(wire)) if app.signer else msgpack.packb(wire)


async def test_bad_messages_are_dead_lettered_and_the_worker_goes_on(app: asyncq.App) -> None:
    queue = app.default_queue

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    bodies = {
        "random bytes": app.signer.sign(b"\x00\x01\xfe\xff random") if app.signer else b"",
        "unsigned": msgpack.packb([1, "f5-a", add.name, [1, 2], {}, {}, {}, 0]),
        "bad signature": app.signer.sign(b"x")[:-1] + b"y" if app.signer else b"",
        "unknown key id": asyncq.signing.Signer(
            {"k9": "0123456789abcdef-key-nine"}).sign(b"x"),
        "wrong version": raw(app, add.name, [1, 2], version=7),
        "dotted import path": raw(app, "os.system", ["id"]),
        "builtin name": raw(app, "builtins.eval", ["1"]),
        "wrong arity": raw(app, add.name, [1, 2, 3]),
        "unknown kwarg": raw(app, add.name, [1], {"z": 2}),
        "invalid id": raw(app, add.name, [1, 2], msg_id="../../etc"),
        "oversized": app.signer.sign(b"\x00" * (1024 * 1024 + 10)) if app.signer else b"",
        "non-str map key": app.signer.sign(b"\x81\x01\x02") if app.signer else b"",
        "invalid utf-8": app.signer.sign(b"\xa2\xff\xfe") if app.signer else b"",
        "unknown ext": app.signer.sign(b"\xd4\x63\x00") if app.signer else b"",
        "deep nesting": app.signer.sign(b"\x91" * 50_000 + b"\x01") if app.signer else b"",
    }
    async with app, asyncq.Worker(app, concurrency=4):
        for n, body in enumerate(bodies.values()):
            await app.broker.publish(Outgoing(f"bad-{n}", queue, body))
        assert await (await add.enqueue(20, 22)).get(timeout=20) == 42
        letters = []
        for _ in range(200):
            letters = await app.broker.dead_letters(queue, 100)
            if len(letters) >= len(bodies):
                break
            await asyncq_sleep()
    assert len(letters) == len(bodies)
    # an over-size body is kept cut to its first DEAD_BODY_KEEP bytes (issue 13)
    kept = {body if len(body) <= app.max_message_size else body[:DEAD_BODY_KEEP]
            for body in bodies.values()}
    assert {letter.body for letter in letters} == kept
    assert all(letter.reason for letter in letters)
    reasons = " | ".join(letter.reason for letter in letters)
    for expected in ("not signed", "bad signature", "unknown signing key id 'k9'",
                     "unsupported envelope version", "unknown task 'os.system'",
                     "unknown task 'builtins.eval'", "arguments do not match",
                     "invalid task id", "exceeds the 1048576 byte limit"):
        assert expected in reasons, expected


async def test_rejections_are_recorded_only_under_ids_the_worker_can_trust(
        app: asyncq.App) -> None:
    queue = app.default_queue

    @app.task
    async def echo(text: str) -> str:
        return text

    big = raw(app, echo.name, ["x" * (1024 * 1024)], msg_id="f5-big")
    trailing = app.signer.sign(msgpack.packb(
        [1, "f5-trail", echo.name, ["a"], {}, {}, {}, 0]) + b"\x00") if app.signer else b""
    forged = msgpack.packb([1, "f5-victim", echo.name, ["a"], {}, {}, {}, 0])  # unsigned
    async with app, asyncq.Worker(app, concurrency=2):
        for n, body in enumerate((big, trailing, forged)):
            await app.broker.publish(Outgoing(f"trust-{n}", queue, body))
        # signed and verified, so their ids are trusted: the handles fail at once
        with pytest.raises(asyncq.TaskRejected, match="exceeds the 1048576 byte limit"):
            await app.result("f5-big").get(timeout=20)
        with pytest.raises(asyncq.TaskRejected, match="undecodable"):
            await app.result("f5-trail").get(timeout=20)
        # an unsigned message could be a forgery aimed at another task's result
        assert len(await _dead(app, queue, 3)) == 3
        assert await app.result("f5-victim").state() is asyncq.TaskState.PENDING


async def _dead(app: asyncq.App, queue: str, count: int) -> list[object]:
    letters: list[object] = []
    for _ in range(200):
        letters = list(await app.broker.dead_letters(queue, 100))
        if len(letters) >= count:
            break
        await asyncq_sleep()
    return letters


async def asyncq_sleep() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_unserializable_values_and_unprintable_errors(app: asyncq.App) -> None:
    @app.task
    async def returns_object() -> object:
        return object()

    @app.task
    async def raises_unprintable() -> None:
        raise Unprintable()

    @app.task
    async def takes(value: object) -> None: ...

    @app.task
    async def returns_int_keys() -> dict[int, str]:
        return {1: "one"}

    async with app, asyncq.Worker(app, concurrency=2):
        before = await app.broker.queue_size(app.default_queue)
        with pytest.raises(asyncq.SerializationError, match="positional argument 0"):
            await takes.enqueue({1, 2})
        # msgpack could pack these, but no decoder here would accept them: refused at once
        with pytest.raises(asyncq.SerializationError, match="map key 1 is a int"):
            await takes.enqueue({1: "one"})
        with pytest.raises(asyncq.SerializationError, match="map key"):
            await takes.enqueue([{"ok": {(1, 2): "tuple key"}}])
        assert await app.broker.queue_size(app.default_queue) == before
        with pytest.raises(asyncq.TaskFailed, match="cannot be serialized"):
            await (await returns_object.enqueue()).get(timeout=20)
        with pytest.raises(asyncq.TaskFailed, match="map key 1 is a int"):
            await (await returns_int_keys.enqueue()).get(timeout=20)
        with pytest.raises(asyncq.TaskFailed) as caught:
            await (await raises_unprintable.enqueue()).get(timeout=20)
    assert caught.value.exc_message.startswith("<unprintable ")
    assert caught.value.exc_message.endswith("test_f5_bad_inputs.Unprintable>")


@pytest.mark.parametrize("forged", [
    b"garbage",
    b"S" + codec.dumps([7, 1, None, None, None, 0, None, None]),
    b"F" + codec.dumps([1, None, {"module": "f5_sentinel_module"}, "x", None, 0, None, None]),
])
async def test_forged_result_records_raise_decode_error(app: asyncq.App, redis_url: str,
                                                        forged: bytes) -> None:
    task_id = f"forged-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    client.set(result_key(task_id), forged, ex=60)
    client.close()
    async with app:
        with pytest.raises(asyncq.DecodeError):
            await app.result(task_id).get(timeout=5)


async def test_a_forged_record_naming_code_imports_nothing(app: asyncq.App,
                                                           redis_url: str) -> None:
    task_id = f"forged-{uuid.uuid4().hex[:8]}"
    record = b"F" + codec.dumps([1, None, "f5_sentinel_module.Boom", "os.system('id')",
                                 "f5_sentinel_module", 0, "f5_sentinel_module.task", None])
    client = redis.Redis.from_url(redis_url)
    client.set(result_key(task_id), record, ex=60)
    client.close()
    async with app:  # signing on: an unsigned record is refused (issue 13)
        with pytest.raises(asyncq.SignatureError, match="is not signed"):
            await app.result(task_id).get(timeout=5)
    plain = asyncq.App(f"f5{uuid.uuid4().hex[:6]}", broker=redis_url)
    async with plain:  # without keys it is read, as strings
        with pytest.raises(asyncq.TaskFailed) as caught:
            await plain.result(task_id).get(timeout=5)
    assert caught.value.exc_type == "f5_sentinel_module.Boom"
    assert "f5_sentinel_module" not in sys.modules
