"""Defining tasks: names, queues, options, and what @app.task refuses."""

import asyncio
from collections.abc import Iterator

from asyncq import App, ConfigurationError

app = App("tasks-guide", broker="memory://tasks-guide")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task(name="billing.charge", queue="billing", timeout=30, retries=3,
          retry_on=(ConnectionError,))
async def charge(customer_id: int, cents: int) -> str:
    return f"charged customer {customer_id} {cents} cents"


async def main() -> None:
    print(add.name, add.config.queue)        # __main__.add default
    print(charge.name, charge.config.queue)  # billing.charge billing
    print(sorted(app.tasks))                 # the registry: name -> Task
    print(await add(2, 3))                   # a plain call runs here and now: 5

    try:
        @app.task
        def numbers(n: int) -> Iterator[int]:
            yield from range(n)
    except ConfigurationError as exc:
        print("refused:", exc)

    try:
        @app.task(name="billing.charge")
        async def charge_again(customer_id: int) -> None: ...
    except ConfigurationError as exc:
        print("refused:", exc)

    try:
        @app.task(retry_delay=5)  # type: ignore[call-overload, untyped-decorator]
        async def typo() -> None: ...
    except ConfigurationError as exc:
        print("refused:", exc)


if __name__ == "__main__":
    asyncio.run(main())
