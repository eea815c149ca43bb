"""Queues and task routes (by name or glob; per-call options win)."""

import asyncio

from asyncq import App

app = App("routing", broker="memory://routing", task_routes={
    "shop.mail.*": "emails",
    "shop.images.resize": {"queue": "images"},
})


@app.task(name="shop.mail.welcome")
async def welcome(user_id: int) -> None: ...


@app.task(name="shop.images.resize")
async def resize(image_id: int) -> None: ...


async def main() -> None:
    async with app:
        await welcome.enqueue(1)                          # -> emails (route)
        await resize.enqueue(2)                           # -> images (route)
        await resize.options(queue="urgent").enqueue(3)   # -> urgent (per call)
        for queue in ("emails", "images", "urgent"):
            print(queue, await app.broker.queue_size(queue))


if __name__ == "__main__":
    asyncio.run(main())
