"""The App's "runs on my loop" tests (``App.on_bound_loop``, the Sender's ``on_loop``)
follow its connection: set by ``connect()``, reset by ``close()`` and by a failed
connect, so a send after a close connects again instead of using closed clients."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

import asyncq
from asyncq.errors import BrokerUnavailable


async def test_a_closed_app_connects_again_on_the_same_loop(
        redis_url: str, unique: Callable[[str], str]) -> None:
    app = asyncq.App(unique("wiring"), broker=redis_url, backend=redis_url,
                     default_queue=unique("q"))

    @app.task
    async def noop(x: int) -> int:
        return x

    assert not app.on_bound_loop()
    async with app:
        assert app.on_bound_loop()
        await noop.enqueue(1)
    assert not app.on_bound_loop()
    try:
        handle = await noop.enqueue(2)  # connects again, on this same loop
        assert app.on_bound_loop()
        assert await app.broker.queue_size(app.default_queue) == 2
        assert handle.id
    finally:
        await app.broker.delete_queue(app.default_queue)
        await app.close()
    assert not app.on_bound_loop()


async def test_a_failed_connect_leaves_the_app_off_its_loop(
        unique: Callable[[str], str]) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"  # nothing listens there
    app = asyncq.App(unique("wiring"), broker=url, backend=url)

    @app.task
    async def noop(x: int) -> int:
        return x

    with pytest.raises(BrokerUnavailable):
        await noop.enqueue(1)
    assert not app.on_bound_loop()
    with pytest.raises(BrokerUnavailable):  # and it tries again
        await noop.enqueue(1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
