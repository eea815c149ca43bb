"""Retries: retry_on with backoff and jitter, raise Retry, the RETRY state, giving up."""

import asyncio

import asyncq
from asyncq import App, Retry, TaskFailed, TaskState, Worker

app = App("retries", broker="memory://retries")
calls: dict[str, int] = {}


# up to 3 retries on these exception types; delays drawn from [0, 0.1 * 2**attempt] s
@app.task(name="partner.confirm", retries=3, retry_on=(ConnectionError, TimeoutError),
          retry_backoff=0.1, retry_backoff_max=60)
async def confirm_order(order_id: int) -> str:
    request = asyncq.current_request()
    calls[request.id] = request.attempt + 1
    if request.attempt < 2:
        raise ConnectionError("partner API down")
    return f"order {order_id} confirmed on attempt {request.attempt}"


# decide inside the task: run again later, with your own delay and limit
@app.task(name="stock.wait_for")
async def wait_for_stock(sku: str) -> str:
    request = asyncq.current_request()
    if request.attempt < 2:
        raise Retry(delay=0.05, max_retries=5)
    return f"{sku} in stock after {request.attempt} retries"


# retry_jitter=False: exactly 0.05, 0.1 s; the last failure is what the handle reports
@app.task(name="mail.send", retries=2, retry_on=(ConnectionError,), retry_backoff=0.05,
          retry_jitter=False)
async def send_mail(to: str) -> None:
    request = asyncq.current_request()
    raise ConnectionError(f"SMTP refused (attempt {request.attempt}, "
                          f"last: {request.is_last_attempt})")


# Retry(cause=...) retries, and fails with the cause once retries are used up
@app.task(name="feed.fetch", retries=1)
async def fetch_feed(url: str) -> None:
    try:
        raise OSError(f"cannot reach {url}")
    except OSError as exc:
        raise Retry(delay=0.01, cause=exc) from exc


async def main() -> None:
    async with app, Worker(app, concurrency=10):
        handle = await confirm_order.enqueue(7)
        await asyncio.sleep(0.01)
        record = await handle.info()  # between attempts the handle says RETRY
        if record is not None and record.state is TaskState.RETRY:
            print("meanwhile:", record.state, record.error_type, record.error_message)
        print(await handle.get(timeout=10), f"({calls[handle.id]} runs)")

        print(await (await wait_for_stock.enqueue("sku-1")).get(timeout=5))

        mail = await send_mail.enqueue("ada@example.test")
        feed = await fetch_feed.enqueue("https://example.test/feed")
        for gives_up in (mail, feed):
            try:
                await gives_up.get(timeout=5)
            except TaskFailed as exc:
                print("gave up:", exc.exc_type, "-", exc.exc_message)


if __name__ == "__main__":
    asyncio.run(main())
