"""App-wide task defaults and hooks: Celery's task_annotations and Task base class."""

import asyncio

from asyncq import App, Request, TaskFailed, Worker
from asyncq.middleware.hooks import AppHooks


async def alert(request: Request, exc: BaseException) -> None:
    # every failure of every task, with the call's arguments
    print(f"ALERT {request.task}{request.args} failed after {request.retries} "
          f"retries (max {request.max_retries}): {exc!r}")


app = App("defaults", broker="memory://defaults",
          task_defaults={"retries": 2, "retry_on": (ConnectionError,),
                         "retry_backoff": 0.01, "timeout": 30},
          middleware=[AppHooks(on_failure=alert)])


@app.task(name="shop.sync")
async def sync(sku: str) -> None:
    raise ConnectionError(f"{sku}: warehouse API down")


@app.task(name="shop.ping", retries=0)  # its own option wins over the default
async def ping() -> str:
    return "pong"


async def main() -> None:
    print("sync:", sync.config.retries, sync.config.timeout)  # 2 30
    print("ping:", ping.config.retries, ping.config.timeout)  # 0 30
    async with app, Worker(app, concurrency=10):
        print(await (await ping.enqueue()).get(timeout=5))
        try:
            await (await sync.enqueue("sku-9")).get(timeout=5)
        except TaskFailed as exc:
            print("failed:", exc.exc_type)


if __name__ == "__main__":
    asyncio.run(main())
