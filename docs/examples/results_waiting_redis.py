"""How waiting works on Redis: many handles, one pub/sub connection, the reply channel
and its batch twin.

Needs Redis: $ASYNCQ_TEST_REDIS_URL, default redis://127.0.0.1:6379/0.
"""

import asyncio
import os
import uuid

import redis.asyncio as aioredis

from asyncq import App, Worker

RUN = uuid.uuid4().hex[:8]
QUEUE = f"docs-waiting-{RUN}"  # a queue of our own on a shared Redis
BASE = os.environ.get("ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
URL = f"{BASE}?client_name=docs-waiting-{RUN}"  # names our connections in CLIENT LIST

# results kept 60 s (default: 24 h); no revocations, so the worker below holds no
# pub/sub connection of its own and the count shows the waiting handles' alone
app = App("docs-waiting", broker=URL, result_ttl=60, revoke_window=None)


@app.task(queue=QUEUE)
async def resize(image_id: int) -> str:
    await asyncio.sleep(0.5)
    return f"image {image_id} resized"


async def our_pubsub_connections() -> list[dict[str, str]]:
    async with aioredis.Redis.from_url(BASE) as admin:
        clients = await admin.client_list(_type="pubsub")
    return [c for c in clients if c.get("name") == f"docs-waiting-{RUN}"]


async def main() -> None:
    try:
        async with app, Worker(app, concurrency=500):
            handles = await app.enqueue_many([resize.s(n) for n in range(300)])
            waiting = asyncio.gather(*(h.get(timeout=10) for h in handles))
            await asyncio.sleep(0.25)  # every handle is waiting now
            connections = await our_pubsub_connections()
            print(f"{len(handles)} handles waiting on {len(connections)} pub/sub connection(s),"
                  f" {sum(int(c['sub']) for c in connections)} channel(s)")
            results = await waiting
            print(len(results), "results;", results[0])

            # another process only needs the id (and an App on the same Redis)
            other = App("docs-waiting-reader", broker=URL)
            async with other:
                print("from another app:", await other.result(handles[7].id).get(timeout=5))
    finally:
        async with app:
            await app.broker.delete_queue(QUEUE)


if __name__ == "__main__":
    asyncio.run(main())
