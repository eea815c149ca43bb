"""Workflows: chain, group, chord, link and link_error, with failures you can catch.

Runs on the in-memory broker with an in-process worker; the same code runs on Redis,
or on RabbitMQ with Redis results (workflows need a result store: not rpc://).
"""

import asyncio

from asyncq import App, TaskFailed, Worker, chain, chord, group

app = App("pages", broker="memory://workflows")


@app.task(name="pages.fetch_page")
async def fetch_page(url: str) -> str:
    return f"<html><title>{url}</title></html>"


@app.task(name="pages.parse_page")
async def parse_page(page: str) -> dict[str, int]:
    return {"length": len(page)}


@app.task(name="pages.store_page")
async def store_page(info: dict[str, int], url: str) -> str:
    return f"stored {url}: {info['length']} characters"


@app.task(name="maths.add")
async def add(x: int, y: int) -> int:
    return x + y


@app.task(name="maths.tsum")
async def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@app.task(name="maths.divide")
async def divide(x: int, y: int) -> float:
    return x / y


@app.task(name="ops.report")
async def report(task_id: str) -> None:
    failure = await app.result(task_id).get(propagate=False)
    if isinstance(failure, TaskFailed):
        print(f"report: {task_id[:8]}... failed with {failure.exc_type}")


async def main() -> None:
    async with app, Worker(app, concurrency=50):
        url = "https://example.test/"
        # a chain: each result is the next call's first argument
        h = await (fetch_page.s(url) | parse_page.s() | store_page.s(url)).enqueue()
        print(await h)
        h = await chain(add.s(1, 2), add.s(3), add.s(4)).enqueue()
        print("chain:", await h.get(timeout=10))

        # a group: every member at once, results in order
        g = await group(add.s(i, i) for i in range(100)).enqueue()
        print("group:", (await g.get(timeout=10))[:5], "...")

        # a chord: the callback gets every member's result, once all are done
        c = await chord(group(add.s(i, i) for i in range(100)), tsum.s()).enqueue()
        print("chord:", await c.get(timeout=10))

        # a group inside a chain: each member gets 2, tsum gets [12, 22]
        h = await chain(add.s(1, 1), group(add.s(10), add.s(20)), tsum.s()).enqueue()
        print("group in a chain:", await h.get(timeout=10))

        # any process can rebuild a workflow's handle from its id
        print("by id:", await app.result(c.id).get(timeout=10))

        # link and link_error: Celery's callbacks
        page = await fetch_page.options(link=[parse_page.s()], link_error=[report.s()]
                                        ).enqueue(url)
        print("linked:", await page.get(timeout=10))
        bad = await divide.options(link_error=[report.s()]).enqueue(1, 0)
        failure = await bad.get(timeout=10, propagate=False)
        assert isinstance(failure, TaskFailed)
        print("caught:", type(failure).__name__, failure.matches(ZeroDivisionError),
              failure.matches(ArithmeticError))
        await asyncio.sleep(0.1)  # let the errback print

        # a failed step stops the chain; the handle names the step
        h = await chain(add.s(1, 2), divide.s(0), add.s(4)).enqueue()
        try:
            await h.get(timeout=10)
        except TaskFailed as exc:
            step, _, why = exc.exc_message.partition(" (")
            print("chain failed at", step, "-", why.rpartition(": ")[2])

        # a failed member fails the chord and calls its errback
        c = await chord([divide.s(1, 1), divide.s(1, 0)], tsum.s()).on_error(report.s()).enqueue()
        try:
            await c.get(timeout=10)
        except TaskFailed as exc:
            print("chord failed:", exc.exc_type)
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main())
