"""Queues and task routes: by exact name or glob; per-call options win."""

import asyncio

from asyncq import App, Worker

app = App("routing", broker="memory://routing", default_queue="main", task_routes={
    "shop.mail.*": "emails",                                   # a glob -> a queue
    "shop.images.resize": {"queue": "images"},                 # an exact name
    "shop.images.*": "media",                                  # exact names beat globs
})


@app.task(name="shop.mail.welcome")
async def welcome(user_id: int) -> None: ...


@app.task(name="shop.images.resize", queue="ignored")  # a route beats @app.task(queue=...)
async def resize(image_id: int) -> None: ...


@app.task(name="shop.images.thumbnail")
async def thumbnail(image_id: int) -> None: ...


@app.task(name="shop.reports.daily", queue="reports")
async def daily_report() -> None: ...


@app.task(name="shop.add")
async def add(x: int, y: int) -> int:
    return x + y


async def main() -> None:
    for task in (welcome, resize, thumbnail, daily_report, add):
        print(f"{task.name:24} -> {app.queue_for(task)}")
    async with app:
        await welcome.enqueue(1)                          # emails (glob route)
        await resize.enqueue(2)                           # images (exact route)
        await thumbnail.enqueue(3)                        # media (glob route)
        await daily_report.enqueue()                      # reports (@app.task)
        await add.enqueue(1, 2)                           # main (the app's default queue)
        await resize.options(queue="urgent").enqueue(4)   # urgent (per call beats all)
        for queue in ("emails", "images", "media", "reports", "main", "urgent"):
            print(queue, await app.broker.queue_size(queue))
    # a worker without queues= consumes every queue a task routes to, not "urgent"
    print("worker queues:", Worker(app).queues)


if __name__ == "__main__":
    asyncio.run(main())
