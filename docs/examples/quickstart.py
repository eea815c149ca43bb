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
    await asyncio.sleep(0.01)  # stands in for talking to a mail server
    return f"sent {len(body)} characters to {to}"


@app.task
async def fail() -> None:
    raise ValueError("no such customer")


async def main() -> None:
    async with app, Worker(app, queues=["default", "emails"], concurrency=10):
        handle = await add.enqueue(2, 3)                     # returns once the broker has it
        print("add:", await handle)                          # 5
        print("state:", await handle.state())                # SUCCESS
        email = await send_email.enqueue("a@example.test", "hi")
        print("email:", await email.get(timeout=5))
        try:
            await (await fail.enqueue())
        except TaskFailed as exc:
            print("failed:", exc.exc_type, exc.exc_message)  # ValueError no such customer
        again = app.result(handle.id)                        # a handle from an id alone
        print("by id:", await again)


if __name__ == "__main__":
    asyncio.run(main())
