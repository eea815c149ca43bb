"""asyncq_lifespan composes with an app's own lifespan; asyncq_app finds the App."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

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


async def test_testclient_with_a_worker_on_the_tests_loop(unique: Callable[[str], str]) -> None:
    """The worker fixture's shape with TestClient, the client called from a thread so the
    test's loop (and the worker on it) keeps running: memory:// hands the message and
    the result across the two loops at once, not at the next timer (3 s here)."""
    queue = asyncq.App("contrib", broker=f"memory://{unique('contrib')}")

    @queue.task
    async def double(x: int) -> int:
        return 2 * x

    async def endpoint(request: Request) -> JSONResponse:
        handle = await double.enqueue(int(request.query_params["x"]))
        return JSONResponse({"value": await handle.get(timeout=5)})

    api = Starlette(routes=[Route("/", endpoint)], lifespan=asyncq_lifespan(queue))
    async with queue, asyncq.Worker(queue, fetch_timeout=3.0, loop_lag_threshold=None):
        await asyncio.sleep(0.1)  # the worker now waits in a 3 s fetch
        with TestClient(api) as client:
            started = time.monotonic()
            responses = [await asyncio.to_thread(client.get, "/", params={"x": n})
                         for n in range(5)]
            elapsed = time.monotonic() - started
    assert [r.json()["value"] for r in responses] == [0, 2, 4, 6, 8]
    assert elapsed < 2.0, f"{elapsed:.2f}s: a wake-up waited for a timer"
