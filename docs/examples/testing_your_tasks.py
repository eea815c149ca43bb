"""Testing your own tasks without a server: memory:// and an in-process worker.

A pytest module for pytest-asyncio: `pip install asyncq pytest pytest-asyncio`. It needs
no pytest settings (the tests and the fixture are marked for pytest-asyncio; in
asyncio_mode = "auto" the marks do no harm). Run it with pytest, or directly:
`python docs/examples/testing_your_tasks.py` runs pytest on itself.
"""

import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import asyncq

pytestmark = pytest.mark.asyncio  # every async test in this module runs on asyncio

# In your project this is your real app; point it at memory in tests with
# ASYNCQ_BROKER=memory:// (App() reads it when no broker is given).
app = asyncq.App("mytests", broker="memory://mytests")
sent: list[str] = []


@app.task(retries=2, retry_on=(ConnectionError,), retry_backoff=0.01)
async def fetch(url: str) -> int:
    if asyncq.current_request().attempt == 0:
        raise ConnectionError("flaky network")  # the first attempt fails
    return len(url)


@app.task
async def send_welcome(email: str) -> None:
    sent.append(email)


@app.task
async def store(payload: object) -> None: ...


@pytest_asyncio.fixture
async def worker() -> AsyncIterator[asyncq.Worker]:
    # fetch_timeout: how long one fetch may block; short, so the worker stops at once
    async with app, asyncq.Worker(app, concurrency=10, fetch_timeout=0.05) as running:
        yield running


async def test_fetch_retries_then_succeeds(worker: asyncq.Worker) -> None:
    handle = await fetch.enqueue("https://example.test")
    assert await handle.get(timeout=5) == 20
    record = await handle.info()
    assert record is not None
    assert record.attempt == 1


async def test_side_effects_after_join(worker: asyncq.Worker) -> None:
    sent.clear()
    await app.enqueue_many([send_welcome.s(f"user{n}@example.test") for n in range(50)])
    await worker.join()  # until the queues are empty and nothing is held
    assert len(sent) == 50


async def test_arguments_go_through_the_codec(worker: asyncq.Worker) -> None:
    with pytest.raises(asyncq.SerializationError, match="positional argument 0"):
        await store.enqueue({1, 2, 3})  # a set: msgpack cannot carry it


async def test_call_the_coroutine_directly() -> None:
    await send_welcome("direct@example.test")  # no queue, no worker
    assert sent[-1] == "direct@example.test"


if __name__ == "__main__":
    # pytest on this file with no settings but these, whatever project it sits in
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__, "-q", "-c", os.devnull,
                              "-p", "no:cacheprovider",
                              "-o", "asyncio_default_fixture_loop_scope=function"]))
