"""current_request(), on_success / on_failure / on_retry hooks, ignore_result, track_started."""

import asyncio

import asyncq
from asyncq import App, Request, ResultUnavailable, TaskFailed, Worker

app = App("hooks", broker="memory://hooks")


async def on_success(request: Request, value: object) -> None:
    print(f"on_success {request.task}[{request.id}] attempt {request.attempt}: {value!r}")


async def on_failure(request: Request, exc: BaseException) -> None:
    print(f"on_failure {request.task} after {request.attempt + 1} attempt(s): {exc!r}")


async def on_retry(request: Request, exc: BaseException, delay: float) -> None:
    print(f"on_retry {request.task}: {exc!r}, next attempt in {delay:.2f}s")


@app.task(name="shop.sync_stock", retries=1, retry_on=(ConnectionError,),
          retry_backoff=0.05, on_success=on_success, on_failure=on_failure,
          on_retry=on_retry)
async def sync_stock(sku: str) -> int:
    request = asyncq.current_request()  # Celery's bind=True / self.request
    if sku == "broken" or request.attempt == 0:
        raise ConnectionError("warehouse API down")
    return 42


@app.task(name="shop.track_click", ignore_result=True)
async def track_click(url: str) -> None:
    print("tracked", url)


@app.task(name="shop.rebuild_index", track_started=True)
async def rebuild_index() -> str:
    await asyncio.sleep(0.2)
    return "rebuilt"


async def main() -> None:
    async with app, Worker(app, concurrency=10):
        print("result:", await (await sync_stock.enqueue("sku-1")).get(timeout=5))
        try:
            await (await sync_stock.enqueue("broken")).get(timeout=5)
        except TaskFailed as exc:
            print("failed:", exc.exc_type, exc.exc_message)

        click = await track_click.enqueue("/pricing")
        try:
            await click.get(timeout=5)
        except ResultUnavailable as exc:
            print("no result:", exc)

        index = await rebuild_index.enqueue()
        await asyncio.sleep(0.1)  # the task runs for 0.2 s
        print("state while running:", await index.state())  # STARTED
        print(await index.get(timeout=5), await index.state())

    try:
        asyncq.current_request()
    except LookupError as exc:
        print("outside a task:", exc)


if __name__ == "__main__":
    asyncio.run(main())
