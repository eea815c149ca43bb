"""Graceful shutdown: stop fetching, let running tasks finish, hand the rest back."""

import asyncio

from asyncq import App, Worker

app = App("shutdown", broker="memory://shutdown")


@app.task(name="batch.step")
async def step(n: int, seconds: float) -> int:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        print(f"step {n}: cancelled at shutdown; its message goes back to the queue")
        raise
    print(f"step {n}: finished")
    return n


async def main() -> None:
    async with app:
        handles = await app.enqueue_many([step.s(n, 0.3) for n in range(4)])

        # one task at a time, two more held in advance
        worker = Worker(app, concurrency=1, prefetch=2, shutdown_timeout=5)
        async with worker:
            await asyncio.sleep(0.1)
            print("running:", worker.statistics())
        # leaving the block called worker.stop(): step 0 finished, 1 and 2 were handed
        # back at once, 3 was never fetched
        print("after stop:", await handles[0].state(), "| waiting:",
              await app.broker.queue_size("default"))

        # a short grace period: a task still running when it ends is cancelled, and
        # its message handed back too (it runs again later: at-least-once)
        impatient = Worker(app, concurrency=1, prefetch=0, shutdown_timeout=0.1)
        async with impatient:
            await asyncio.sleep(0.1)
        print("after a 0.1 s grace:", await app.broker.queue_size("default"), "waiting")

        async with Worker(app, concurrency=10) as last:
            await last.join()  # until the queues are empty and nothing is held
        print("results:", [await h.get(timeout=5) for h in handles])


if __name__ == "__main__":
    asyncio.run(main())
