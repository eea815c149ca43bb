"""Tests of the shop's API with Starlette's TestClient and with httpx.AsyncClient.

From docs/examples:  pytest shop/test_api.py     (needs: pip install 'asyncq[fastapi]'
pytest pytest-asyncio). They run on $ASYNCQ_BROKER: on memory:// (the default) a worker
runs inside the app; on Redis or RabbitMQ, start `asyncq worker shop.tasks:app` first.
No pytest settings needed: the async tests and fixture are marked for pytest-asyncio.
"""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from starlette.testclient import TestClient

import asyncq
from asyncq.contrib.fastapi import asyncq_app
from shop.api import create_api


# -- Starlette's TestClient: the app runs on the client's own event loop, in a thread --
@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_api()) as client:  # runs the lifespan: connects, starts a worker
        yield client


def test_add_waits_for_the_sum(client: TestClient) -> None:
    response = client.post("/add", params={"x": 2, "y": 3})
    assert response.status_code == 200
    assert response.json()["sum"] == 5


def test_email_is_sent_later(client: TestClient) -> None:
    response = client.post("/emails", json={"to": "ada@example.test", "body": "Shipped."})
    assert response.status_code == 202
    task_id = response.json()["id"]
    for _ in range(200):  # the client polls, as a browser would
        state = client.get(f"/tasks/{task_id}").json()
        if state["state"] == "SUCCESS":
            break
    assert state == {"state": "SUCCESS", "result": "sent 8 characters to ada@example.test"}


def test_unknown_task_is_pending(client: TestClient) -> None:
    assert client.get("/tasks/0123456789abcdef").json() == {"state": "PENDING", "result": None}


# -- httpx.AsyncClient: the app runs on the test's loop; LifespanManager runs the lifespan --
@pytest_asyncio.fixture
async def async_client() -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_api()) as manager:
        transport = httpx.ASGITransport(app=manager.app)  # manager.app carries the state
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
            yield c


@pytest.mark.asyncio
async def test_add_with_async_client(async_client: httpx.AsyncClient) -> None:
    responses = [await async_client.post("/add", params={"x": n, "y": 1}) for n in range(5)]
    assert [r.json()["sum"] for r in responses] == [1, 2, 3, 4, 5]


@pytest.mark.asyncio
async def test_lifespan_must_run() -> None:
    # without LifespanManager, httpx.ASGITransport skips the lifespan: a clear error
    transport = httpx.ASGITransport(app=create_api(run_worker=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
        with pytest.raises(asyncq.ConfigurationError, match="LifespanManager"):
            await c.get("/tasks/0123456789abcdef")


def test_the_dependency_can_be_overridden() -> None:
    api = create_api(run_worker=False)
    other = asyncq.App("other", broker="memory://other")
    api.dependency_overrides[asyncq_app] = lambda: other
    with TestClient(api) as client:
        assert client.get("/tasks/0123456789abcdef").json()["state"] == "PENDING"
