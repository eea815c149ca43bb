"""Dead letters: what goes there and why, and the Python API to list, requeue and purge."""

import asyncio
from typing import Any

from asyncq import App, TaskRejected, TaskResult, Worker

# Two deployments of the same app that disagree, as during a rolling upgrade: the
# producer is newer than the worker. Both use the same in-memory broker.
producer = App("shop", broker="memory://dlq", max_message_size=4 * 1024 * 1024)
worker_app = App("shop", broker="memory://dlq")   # max_message_size: 1 MiB (default)


@producer.task(name="shop.export")              # the worker does not know this task yet
async def export(report_id: int) -> str:
    raise NotImplementedError                   # the producer only sends it


@producer.task(name="shop.resize")              # a newer signature than the worker's
async def resize(image_id: int, width: int) -> None: ...


@worker_app.task(name="shop.resize")
async def resize_old(image_id: int) -> None: ...


@producer.task(name="shop.upload")
async def upload(data: bytes) -> None: ...


async def main() -> None:
    async with producer, Worker(worker_app, ["default"]) as worker:
        handles: list[TaskResult[Any]] = [
            await export.enqueue(7),                   # unknown task
            await resize.enqueue(1, width=800),        # arguments do not bind
        ]
        too_big = await upload.enqueue(b"x" * 2_000_000)  # over the worker's 1 MiB limit
        await worker.join()
        for handle in handles:
            try:
                await handle.get(timeout=5)
            except TaskRejected as exc:                # a TaskFailed that never ran
                print("rejected:", exc.exc_message)
        # the id is read from the head of the envelope: an over-size message fails too
        print("too big:", await too_big.state())

        letters = await producer.broker.dead_letters("default")
        for letter in letters:
            print(f"  ref={letter.ref} task={letter.task} deliveries={letter.deliveries}"
                  f" reason={letter.reason[:60]!r}")

        # deploy the missing task, then requeue its dead letter
        @worker_app.task(name="shop.export")
        async def export_new(report_id: int) -> str:
            return f"report {report_id} exported"

        to_retry = [d.ref for d in letters if d.task == "shop.export"]
        moved = await producer.requeue_dead("default", to_retry)  # clears the rejection too
        print("requeued:", moved, "->", await handles[0].get(timeout=5))

        print("purged:", await producer.broker.purge_dead("default"))
        print("left:", len(await producer.broker.dead_letters("default")))


if __name__ == "__main__":
    asyncio.run(main())
