"""The tasks of a small shop: imported by workers and by the code that sends work."""

import asyncio

from asyncq import App

app = App("shop")  # the broker URL comes from $ASYNCQ_BROKER (memory:// when it is unset)


@app.task  # queue "default"
async def add(x: int, y: int) -> int:
    return x + y


@app.task(queue="emails", timeout=30, retries=3, retry_on=(ConnectionError,))
async def send_email(to: str, body: str) -> str:
    await asyncio.sleep(0.05)  # stands in for talking to a mail server
    return f"sent {len(body)} characters to {to}"
