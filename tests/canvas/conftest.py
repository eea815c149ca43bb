"""Workflows on every broker that can hold them: memory, Redis, RabbitMQ with Redis results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import asyncq

KINDS = ["memory", "redis", "amqp"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def urls(kind: str, request: pytest.FixtureRequest, unique: Callable[[str], str]
         ) -> tuple[str, str | None]:
    if kind == "memory":
        return f"memory://{unique('mem')}", None
    redis_url = str(request.getfixturevalue("redis_url"))
    if kind == "redis":
        return redis_url, None
    return str(request.getfixturevalue("amqp_url")), redis_url


@pytest.fixture
def queue(unique: Callable[[str], str], urls: tuple[str, str | None],
          request: pytest.FixtureRequest) -> str:
    name = unique("wf")
    if urls[0].startswith("redis"):
        request.getfixturevalue("redis_cleanup")(name)
    return name


@pytest.fixture
async def make_app(urls: tuple[str, str | None], unique: Callable[[str], str], queue: str
                   ) -> AsyncIterator[Callable[..., asyncq.App]]:
    apps: list[asyncq.App] = []

    def make(**kwargs: Any) -> asyncq.App:
        app = asyncq.App(kwargs.pop("name", unique("wf")), broker=urls[0], backend=urls[1],
                         default_queue=queue, **kwargs)
        apps.append(app)
        return app

    yield make
    if apps:
        await apps[0].connect()
        await apps[0].broker.delete_queue(queue)
    for app in apps:
        await app.close()
