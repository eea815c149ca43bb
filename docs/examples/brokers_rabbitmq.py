"""RabbitMQ: results in Redis or over AMQP, and Celery's routing through a topic exchange.

Needs RabbitMQ and Redis: $ASYNCQ_TEST_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/,
and $ASYNCQ_TEST_REDIS_URL, default redis://127.0.0.1:6379/0. It declares the exchange
``media`` and the queues ``images`` and ``video`` and deletes them at the end; the
queue ``default`` (the apps' default queue) is left there, empty.
"""

import asyncio
import os

from asyncq import App, PublishError, Worker, current_request
from asyncq.brokers.amqp import AmqpBroker

AMQP_URL = os.environ.get("ASYNCQ_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

simple = App("shop", broker=AMQP_URL, backend=REDIS_URL)   # results in Redis
rpc_app = App("shop-rpc", broker=AMQP_URL)                 # no backend: results over AMQP

broker = AmqpBroker(AMQP_URL,
                    exchanges={"media": "topic"},
                    bindings=[("images", "media", "image.*"), ("video", "media", "video.#")])
app = App("shop", broker=broker, backend=REDIS_URL,
          task_routes={"shop.media.resize_*": {"exchange": "media",
                                                "routing_key": "image.resize"}})


@simple.task(name="shop.add")
async def add(x: int, y: int) -> int:
    return x + y


@rpc_app.task(name="shop.mul")
async def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="shop.media.resize_image")
async def resize_image(name: str) -> str:
    return f"{name} resized from queue {current_request().queue}"


@app.task(name="shop.media.transcode")
async def transcode(clip_id: int) -> str:
    return f"clip {clip_id} transcoded from queue {current_request().queue}"


async def results_two_ways() -> None:
    async with simple, Worker(simple, concurrency=4):
        print("results in Redis:", await (await add.enqueue(2, 3)).get(timeout=20))
    async with rpc_app, Worker(rpc_app, concurrency=4):
        print("results over AMQP:", await (await mul.enqueue(6, 7)).get(timeout=20))


async def routing(clip_id: int) -> None:
    async with app, Worker(app, queues=["images", "video"], concurrency=4):
        print(await (await resize_image.enqueue("cat.png")).get(timeout=20))
        handle = await transcode.options(exchange="media", routing_key="video.hd").enqueue(clip_id)
        print(await handle.get(timeout=20))
        try:
            await transcode.options(exchange="media", routing_key="audio.mp3").enqueue(clip_id)
        except PublishError as exc:
            print("refused:", str(exc).split(":")[0])


async def main() -> None:
    try:
        await results_two_ways()
        await routing(7)
    finally:
        async with app:
            for queue in ("images", "video"):
                await broker.delete_queue(queue)
            await broker.delete_exchange("media")


if __name__ == "__main__":
    asyncio.run(main())
