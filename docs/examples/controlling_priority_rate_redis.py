"""Priorities (higher first) and a rate limit shared by all workers, on Redis.

Needs Redis: $ASYNCQ_TEST_REDIS_URL, default redis://127.0.0.1:6379/0.
"""

import asyncio
import os
import time
import uuid

from asyncq import App, Worker

RUN = uuid.uuid4().hex[:8]
URL = os.environ.get("ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
app = App(f"docs-control-{RUN}", broker=URL, default_queue=f"docs-control-{RUN}")
order: list[str] = []
calls: list[float] = []


@app.task(name="tickets.handle")
async def handle_ticket(ticket: str) -> None:
    order.append(ticket)


@app.task(name="partner.call", rate_limit="10/s")  # shared by every worker of the app
async def call_partner_api(n: int) -> None:
    calls.append(time.monotonic())


async def main() -> None:
    async with app:
        try:
            await handle_ticket.enqueue("routine-1")  # no priority: 0
            await handle_ticket.options(priority=9).enqueue("outage")
            await handle_ticket.options(priority=5).enqueue("billing")
            await handle_ticket.enqueue("routine-2")
            await handle_ticket.options(priority=9).enqueue("security")
            async with Worker(app, concurrency=1, prefetch=0) as worker:
                await worker.join(timeout=10)
            print("ran:", ", ".join(order))

            await app.enqueue_many([call_partner_api.s(n) for n in range(12)])
            async with Worker(app, concurrency=50) as worker:
                await worker.join(timeout=10)
            span = calls[-1] - calls[0]
            rate = (len(calls) - 2) / span
            print(f"12 calls in {span:.1f}s: {rate:.0f}/s after a burst of 2")
            print("never faster than the limit:", rate <= 10.5)
        finally:
            await app.broker.delete_queue(app.default_queue)


if __name__ == "__main__":
    asyncio.run(main())
