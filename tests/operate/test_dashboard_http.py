"""The dashboard over HTTP (no browser): content, escaping, read-only, token-gated actions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

pytest.importorskip("starlette")
import httpx

from asyncq import App, Worker
from asyncq.brokers import Outgoing
from asyncq.dashboard import create_dashboard
from asyncq.events.monitor import Events

HOSTILE = "<script>document.title='pwned'</script>"
HOSTILE_DEAD = "<img src=x onerror=alert(1)>\x1b[31m"


def make(unique: Callable[[str], str]) -> tuple[App, str]:
    queue = unique("dq")
    app = App(unique("dash"), broker=f"memory://{unique('m')}", middleware=[Events(0.2)])

    @app.task(name=HOSTILE, queue=queue)
    async def hostile(secret: str) -> str:
        return secret

    return app, queue


async def poison(app: App, queue: str) -> None:
    body = app.codec.encode(uuid.uuid4().hex, HOSTILE_DEAD, ["top-secret-arg"], {}, {}, {})
    await app.broker.publish(Outgoing(uuid.uuid4().hex, queue, body))


async def test_pages_escape_what_the_broker_says(unique: Callable[[str], str]) -> None:
    app, queue = make(unique)
    web = create_dashboard(app)
    async with app, Worker(app, concurrency=2) as worker, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=web), base_url="http://dash") as client:
        await client.get("/")  # starts following events
        handle = await app.tasks[HOSTILE].enqueue("top-secret-arg")
        await handle.get(timeout=5)
        await poison(app, queue)
        await worker.join(5)
        await asyncio.sleep(0.5)
        page = (await client.get("/")).text
        assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
        assert HOSTILE not in page
        assert "SUCCESS" in page
        assert ">online<" in page
        detail = (await client.get(f"/task/{handle.id}")).text
        assert "top-secret-arg" not in detail  # results and arguments hidden by default
        assert "SUCCESS" in detail
        dead = (await client.get(f"/dead/{queue}")).text
        assert "&lt;img src=x onerror=alert(1)&gt;\\x1b[31m" in dead
        assert "<img" not in dead
        assert "top-secret-arg" not in dead
        assert "Read-only" in dead
        refused = await client.post(f"/dead/{queue}/purge", data={"token": "x"})
        assert refused.status_code == 403
        state = (await client.get("/api/state")).json()
        states = {t["task"]: t["state"] for t in state["tasks"]}
        assert states == {HOSTILE: "SUCCESS", HOSTILE_DEAD: "DEAD"}  # JSON carries them as data
        assert state["workers"][0]["state"] == "online"


async def test_actions_need_the_flag_and_the_token(unique: Callable[[str], str]) -> None:
    app, queue = make(unique)
    web = create_dashboard(app, actions=True, token="s3cret-token", show_args=True)
    async with app, httpx.AsyncClient(transport=httpx.ASGITransport(app=web),
                                      base_url="http://dash") as client:
        await poison(app, queue)
        await poison(app, queue)
        async with Worker(app, concurrency=1) as worker:
            await worker.join(5)
        dead = (await client.get(f"/dead/{queue}")).text
        assert "top-secret-arg" in dead  # show_args
        wrong = await client.post(f"/dead/{queue}/purge", data={"token": "guess"})
        assert wrong.status_code == 403
        assert len(await app.broker.dead_letters(queue)) == 2
        right = await client.post(f"/dead/{queue}/purge", data={"token": "s3cret-token"})
        assert right.status_code == 303
        assert await app.broker.dead_letters(queue) == []


def test_actions_without_a_token_are_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        create_dashboard(App("x", broker="memory://"), actions=True)


async def test_unknown_queues_are_not_read(unique: Callable[[str], str]) -> None:
    app, _ = make(unique)
    web = create_dashboard(app)
    async with app, httpx.AsyncClient(transport=httpx.ASGITransport(app=web),
                                      base_url="http://dash") as client:
        assert (await client.get("/dead/somebody-elses-queue")).status_code == 404


async def test_mounted_in_another_asgi_app(unique: Callable[[str], str]) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    app, queue = make(unique)

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("the shop")

    site = Starlette(routes=[Route("/", home), Mount("/queue", app=create_dashboard(app))])
    async with app, httpx.AsyncClient(transport=httpx.ASGITransport(app=site),
                                      base_url="http://shop") as client:
        assert (await client.get("/")).text == "the shop"
        page = (await client.get("/queue/")).text
        assert f'href="/queue/dead/{queue}"' in page  # links follow the mount path
        assert 'data-src="/queue/fragment"' in page
        assert (await client.get(f"/queue/dead/{queue}")).status_code == 200


async def test_revoke_from_the_task_page(unique: Callable[[str], str]) -> None:
    app, _ = make(unique)
    web = create_dashboard(app, actions=True, token="s3cret-token")
    async with app, httpx.AsyncClient(transport=httpx.ASGITransport(app=web),
                                      base_url="http://dash") as client:
        handle = await app.tasks[HOSTILE].options(countdown=60).enqueue("x")
        page = (await client.get(f"/task/{handle.id}")).text
        assert f'action="/task/{handle.id}/revoke"' in page
        refused = await client.post(f"/task/{handle.id}/revoke", data={"token": "no"})
        assert refused.status_code == 403
        done = await client.post(f"/task/{handle.id}/revoke", data={"token": "s3cret-token"})
        assert done.status_code == 303
        assert str(await handle.state()) == "REVOKED"
