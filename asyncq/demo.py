"""A runnable tour: ``python -m asyncq.demo [BROKER_URL]``.

Enqueues work, runs a worker in this process, and prints the results. Without a
URL it uses the in-memory broker, so it needs no server.
"""

from __future__ import annotations

import asyncio
import sys
import time

from asyncq import App, TaskFailed, Worker
from asyncq._urls import mask_url

app = App("demo", broker=sys.argv[1] if len(sys.argv) > 1 else "memory://demo")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task(timeout=5)
async def fetch_page(url: str) -> dict[str, object]:
    await asyncio.sleep(0.05)  # stands in for network I/O
    return {"url": url, "status": 200}


@app.task
async def divide(x: float, y: float) -> float:
    return x / y


async def main() -> None:
    print(f"asyncq demo on {mask_url(app.broker.url)}")
    async with app, Worker(app, concurrency=50):
        handle = await add.enqueue(2, 3)
        print(f"add(2, 3) = {await handle}  [{await handle.state()}]")

        pages = [await fetch_page.enqueue(f"https://example.test/{n}") for n in range(20)]
        started = time.perf_counter()
        results = await asyncio.gather(*pages)
        elapsed = time.perf_counter() - started
        print(f"20 x fetch_page (50 ms each) -> {len(results)} results in {elapsed:.2f}s, "
              f"run concurrently")

        try:
            await (await divide.enqueue(1, 0))
        except TaskFailed as exc:
            print(f"divide(1, 0) failed remotely: {exc.exc_type}: {exc.exc_message}")

        again = app.result(handle.id)
        print(f"handle rebuilt from its id {handle.id[:8]}...: {await again}")

        many = await app.enqueue_many([add.s(n, n) for n in range(1000)])
        total = sum(await asyncio.gather(*many))
        print(f"1000 x add(n, n) enqueued in one batch, sum = {total}")


if __name__ == "__main__":
    asyncio.run(main())
