"""Operating asyncq from Python: events, control, inspect, queue depths and metrics."""

import asyncio

from prometheus_client import generate_latest

from asyncq import App, Worker
from asyncq.events import bus_for
from asyncq.events.monitor import Events
from asyncq.events.queues import queue_depths
from asyncq.middleware.prometheus import Metrics

metrics = Metrics()  # Metrics(port=9808) also serves /metrics while a worker runs
app = App("shop", broker="memory://operating", middleware=[Events(), metrics])


@app.task(name="shop.resize", queue="images")
async def resize(name: str) -> str:
    await asyncio.sleep(0.2)
    return f"resized {name}"


async def main() -> None:
    async with app, Worker(app, concurrency=4):
        handles = [await resize.enqueue(f"cat{i}.png") for i in range(3)]
        await asyncio.sleep(0.1)
        # ask the workers (replies are collected for `timeout` seconds)
        active = await app.inspect(timeout=0.2).active()
        for worker, jobs in active.items():
            print(worker, "is running", sorted(job["task"] for job in jobs))
        print("pong:", list((await app.control.ping(timeout=0.2)).values()))
        print("waiting:", (await queue_depths(app, ["images"]))["images"].waiting)
        for handle in handles:
            await handle.get(timeout=5)
        await asyncio.sleep(0.3)  # events go out in batches every 0.25 s
        kinds = [event["type"] for event in await bus_for(app).recent(100)]
        print("events:", sorted(set(kinds)))
    text = generate_latest(metrics.registry).decode()
    print(next(line for line in text.splitlines()
               if line.startswith("asyncq_tasks_total{")))


asyncio.run(main())
