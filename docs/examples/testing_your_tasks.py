"""Testing your own tasks without a server: memory:// and an in-process worker.

Run with pytest (pytest-asyncio in auto mode) or directly.
"""

import asyncio

import asyncq

app = asyncq.App("mytests", broker="memory://mytests")


@app.task(retries=2, retry_on=(ConnectionError,), retry_backoff=0.01)
async def fetch(url: str) -> int:
    if asyncq.current_request().attempt == 0:
        raise ConnectionError("flaky network")  # the first attempt fails
    return len(url)


async def test_fetch_retries_then_succeeds() -> None:
    async with app, asyncq.Worker(app, concurrency=5):
        handle = await fetch.enqueue("https://example.test")
        assert await handle.get(timeout=5) == 20
        record = await handle.info()
        assert record is not None
        assert record.attempt == 1


if __name__ == "__main__":
    asyncio.run(test_fetch_retries_then_succeeds())
    print("ok")
