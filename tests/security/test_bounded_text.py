"""Unbounded text (issue 13): what a message says about itself reaches dead letters and
log lines cut to asyncq._text.MAX_FIELD characters; argument values are never logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

import asyncq
from asyncq._text import MAX_FIELD, bounded
from asyncq.brokers import Outgoing
from asyncq.testing import worker
from asyncq.wire import encode_fields

HUGE = 500_000
SECRET = "s3cr3t-argument-value"


@pytest.fixture
async def app(redis_url: str, unique: Callable[[str], str],
              redis_cleanup: Callable[[str], None]) -> AsyncIterator[asyncq.App]:
    queue = unique("txt")
    redis_cleanup(queue)
    application = asyncq.App(unique("txt"), broker=redis_url, default_queue=queue)
    async with application:
        yield application


def test_bounded() -> None:
    assert bounded("abc") == "abc"
    cut = bounded("x" * 5000)
    assert cut.startswith("x" * MAX_FIELD)
    assert cut.endswith("[3976 more characters]")


async def test_huge_names_and_errors_are_bounded_in_dead_letters_and_logs(
        app: asyncq.App, caplog: pytest.LogCaptureFixture) -> None:
    queue = app.default_queue

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    @app.task
    async def fail(secret: str) -> None:
        raise ValueError("E" * HUGE)

    bodies = [
        encode_fields("huge-name", "t" * HUGE, [SECRET], {}, {}, {}),
        encode_fields("huge-kwarg", add.name, [1, 2], {"k" * HUGE: SECRET}, {}, {}),
    ]
    caplog.set_level(logging.INFO, logger="asyncq")
    async with worker(app):
        for i, body in enumerate(bodies):
            await app.broker.publish(Outgoing(f"b{i}", queue, body))
        handle = await fail.enqueue(SECRET)
        with pytest.raises(asyncq.TaskFailed):
            await handle.get(timeout=10)
        for _ in range(200):
            if len(await app.broker.dead_letters(queue)) == 2:
                break
            await asyncio.sleep(0.05)
    letters = await app.broker.dead_letters(queue)
    assert len(letters) == 2
    for letter in letters:
        assert len(letter.reason) < 2 * MAX_FIELD, len(letter.reason)
        assert letter.task is None or len(letter.task) < 2 * MAX_FIELD
        assert SECRET not in letter.reason
    for record in caplog.records:
        text = record.getMessage()
        assert len(text) < 4 * MAX_FIELD, text[:200]
        assert SECRET not in text
    assert any("more characters]" in r.getMessage() for r in caplog.records)
