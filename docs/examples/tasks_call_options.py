"""Per-call options, signatures, batches and sending by name."""

import asyncio
import datetime as dt
import time

import asyncq
from asyncq import App, TaskCancelled, Worker

app = App("call-options", broker="memory://call-options")


@app.task(name="shop.remind")
async def remind(user_id: int) -> str:
    request = asyncq.current_request()
    return f"reminded {user_id} on {request.queue} (trace {request.headers.get('trace')})"


async def main() -> None:
    async with app, Worker(app, queues=["default", "urgent"], concurrency=20):
        started = time.monotonic()

        # run no sooner than 0.3 s from now
        later = await remind.options(countdown=0.3).enqueue(1)
        # or at a point in time: an aware datetime (or a unix timestamp)
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)
        at_time = await remind.options(eta=at).enqueue(2)
        print(await later.get(timeout=5), f"after {time.monotonic() - started:.1f}s")
        print(await at_time.get(timeout=5))

        # another queue, your own id, headers the task can read
        bound = remind.options(queue="urgent", task_id="remind-3")
        handle = await bound.options(headers={"trace": "abc123"}).enqueue(3)
        print(handle.id, "->", await handle.get(timeout=5))

        # give up on a task that has not started within 0.1 s (here: it is delayed 0.5 s)
        stale = await remind.options(countdown=0.5, expires=0.1).enqueue(4)
        try:
            await stale.get(timeout=5)
        except TaskCancelled as exc:
            print("expired:", exc)

        # many calls in as few round trips as the broker allows
        handles = await app.enqueue_many([remind.s(n) for n in range(100)])
        print(len(await asyncio.gather(*(h.get(timeout=5) for h in handles))), "reminders")

        # by name, without the task object (the app must still know the name)
        by_name = await app.send_task("shop.remind", [5], countdown=0.1)
        print(await by_name.get(timeout=5))


if __name__ == "__main__":
    asyncio.run(main())
