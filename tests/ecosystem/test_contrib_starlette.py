"""asyncq_lifespan composes with an app's own lifespan; asyncq_app finds the App."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import asyncq
from asyncq.contrib.starlette import asyncq_app, asyncq_lifespan


async def test_lifespan_wraps_the_apps_own(unique: Callable[[str], str]) -> None:
    queue = asyncq.App("contrib", broker=f"memory://{unique('contrib')}")
    events: list[str] = []

    @queue.task
    async def double(x: int) -> int:
        return 2 * x

    @asynccontextmanager
    async def own(_: Starlette) -> AsyncIterator[dict[str, object]]:
        # the App is connected (and the worker running) before the app's own startup
        events.append(f"own start, doubled {await (await double.enqueue(21)).get(timeout=5)}")
        yield {"db": "connected"}
        events.append("own stop")

    async def endpoint(request: Request) -> JSONResponse:
        app = asyncq_app(request)
        handle = await double.enqueue(4)
        return JSONResponse({"same": app is queue, "db": request.state.db,
                             "value": await handle.get(timeout=5)})

    def worker(app: asyncq.App) -> asyncq.Worker:
        events.append("worker")
        return asyncq.Worker(app, fetch_timeout=0.05)

    api = Starlette(routes=[Route("/", endpoint)],
                    lifespan=asyncq_lifespan(queue, own, worker=worker))
    async with LifespanManager(api) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = (await client.get("/")).json()
    assert body == {"same": True, "db": "connected", "value": 8}
    assert events == ["worker", "own start, doubled 42", "own stop"]
    assert not queue._connected  # closed after the app's own shutdown


async def test_lifespan_without_an_own_lifespan(unique: Callable[[str], str]) -> None:
    queue = asyncq.App("contrib", broker=f"memory://{unique('contrib')}")

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"name": asyncq_app(request).name})

    api = Starlette(routes=[Route("/", endpoint)], lifespan=asyncq_lifespan(queue))
    async with LifespanManager(api) as manager:
        assert queue._connected
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/")).json() == {"name": "contrib"}
    assert not queue._connected
