"""The conformance suite: one set of behaviour tests for every broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import asyncq

#: Every broker asyncq ships; a broker is done when it passes the whole suite.
#: "amqp" keeps results in Redis; "amqp-rpc" sends them back over AMQP (no Redis at all).
#: "redis-resp2" talks RESP2 (``?protocol=2``), as redis-py before 8 does by default:
#: the worker reads XREADGROUP replies as they come, and their shape differs by protocol.
BROKERS = ["memory", "redis", "redis-resp2", "amqp", "amqp-rpc"]


@pytest.fixture(params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker_url(broker_kind: str, request: pytest.FixtureRequest,
               unique: Callable[[str], str]) -> str:
    if broker_kind == "memory":
        return f"memory://{unique('mem')}"
    if broker_kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    if broker_kind == "redis-resp2":
        url = str(request.getfixturevalue("redis_url"))
        return f"{url}{'&' if '?' in url else '?'}protocol=2"
    return str(request.getfixturevalue("amqp_url"))


@pytest.fixture
def backend_url(broker_kind: str, request: pytest.FixtureRequest) -> str | None:
    """Where results go: the broker's own server, except Redis for plain "amqp"."""
    return str(request.getfixturevalue("redis_url")) if broker_kind == "amqp" else None


@pytest.fixture
def id_only_handles(broker_kind: str) -> bool:
    """Whether a handle built from an id alone can see results (not with AMQP RPC)."""
    return broker_kind != "amqp-rpc"


@pytest.fixture
def queue(unique: Callable[[str], str], broker_url: str,
          request: pytest.FixtureRequest) -> str:
    name = unique("q")
    if broker_url.startswith("redis"):
        request.getfixturevalue("redis_cleanup")(name)
    return name


@pytest.fixture
async def make_app(broker_url: str, backend_url: str | None, unique: Callable[[str], str],
                   queue: str) -> AsyncIterator[Callable[..., asyncq.App]]:
    apps: list[asyncq.App] = []

    def make(**kwargs: Any) -> asyncq.App:
        app = asyncq.App(kwargs.pop("name", unique("app")), broker=broker_url,
                         backend=backend_url, default_queue=queue, **kwargs)
        apps.append(app)
        return app

    yield make
    if apps:
        await apps[0].connect()
        await apps[0].broker.delete_queue(queue)
    for app in apps:
        await app.close()
