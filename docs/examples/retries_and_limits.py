"""Retries with backoff, asyncq.Retry, hooks, and soft/hard time limits."""

import asyncio

import asyncq
from asyncq import App, Request, Retry, TaskFailed, Worker

app = App("reliable", broker="memory://reliable")


async def log_retry(request: Request, exc: BaseException, delay: float) -> None:
    print(f"retrying {request.task} attempt {request.attempt + 1} in {delay:.2f}s: {exc}")


@app.task(retries=3, retry_on=(ConnectionError,), retry_backoff=0.05, on_retry=log_retry)
async def call_partner(order_id: int) -> str:
    if asyncq.current_request().attempt < 2:
        raise ConnectionError("partner API down")
    return f"order {order_id} confirmed"


@app.task
async def wait_for_stock(sku: str) -> str:
    if asyncq.current_request().attempt < 1:
        raise Retry(delay=0.1)  # ask to run again later
    return f"{sku} in stock"


@app.task(soft_timeout=0.2, timeout=2)
async def crunch() -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        print("cleaning up after the soft time limit")
        raise


async def main() -> None:
    async with app, Worker(app, concurrency=5):
        print(await (await call_partner.enqueue(7)).get(timeout=5))
        print(await (await wait_for_stock.enqueue("sku-1")).get(timeout=5))
        try:
            await (await crunch.enqueue()).get(timeout=5)
        except TaskFailed as exc:
            print("crunch:", exc.exc_type, exc.exc_message)


if __name__ == "__main__":
    asyncio.run(main())
