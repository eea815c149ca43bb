"""Leases on Redis: the messages of a worker that died come back to a live one.

A crash is simulated by a consumer that takes a message and is never heard from again
(as after SIGKILL). Needs Redis: $ASYNCQ_TEST_REDIS_URL, default redis://127.0.0.1:6379/0.
"""

import asyncio
import os
import time
import uuid

import asyncq
from asyncq import App, Worker

URL = os.environ.get("ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = f"docs-leases-{uuid.uuid4().hex[:8]}"

app = App("docs-leases", broker=URL, result_ttl=60)


@app.task(name="orders.ship", queue=QUEUE)
async def ship(order_id: int) -> str:
    request = asyncq.current_request()
    return f"order {order_id} shipped (delivery {request.delivery_count})"


async def main() -> None:
    async with app:
        try:
            handle = await ship.enqueue(42)
            # the "crashed" worker: it read the message, then died before settling it
            doomed = app.broker.consumer([QUEUE], prefetch=10, lease=0.5)
            print("taken by the doomed worker:", len(await doomed.fetch(10, 1.0)))

            started = time.monotonic()
            async with Worker(app, [QUEUE], lease=0.5):  # the CLI's --lease (default 60 s)
                print(await handle.get(timeout=10))
                print(f"recovered after {time.monotonic() - started:.1f}s")
        finally:
            await app.broker.delete_queue(QUEUE)


if __name__ == "__main__":
    asyncio.run(main())
