"""Quickstart: tasks, a worker in this process, results. Runs on the in-memory broker.

    python docs/examples/quickstart.py [BROKER_URL]
"""

import asyncio
import sys

from asyncq import App, TaskFailed, Worker

app = App("quickstart", broker=sys.argv[1] if len(sys.argv) > 1 else "memory://quickstart")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task(queue="emails", timeout=30)
async def send_email(to: str, body: str) -> str:
    return f"sent {len(body)} characters to {to}"


@app.task
async def fail() -> None:
    raise ValueError("no such customer")


async def main() -> None:
    async with app, Worker(app, queues=["default", "emails"], concurrency=10):
        handle = await add.enqueue(2, 3)
        print("add:", await handle)                          # 5
        print("state:", await handle.state())                # SUCCESS
        print("email:", await (await send_email.enqueue("a@example.test", "hi")).get(timeout=5))
        try:
            await (await fail.enqueue())
        except TaskFailed as exc:
            print("failed:", exc.exc_type, exc.exc_message)  # ValueError no such customer
        again = app.result(handle.id)                        # a handle from an id alone
        print("by id:", await again)


if __name__ == "__main__":
    asyncio.run(main())
