"""A running task reports progress; anyone holding the handle reads it."""

import asyncio

import asyncq
from asyncq import App, Worker

app = App("progress", broker="memory://progress")
halfway, go_on = asyncio.Event(), asyncio.Event()


@app.task(name="imports.rows")
async def import_rows(total: int) -> int:
    request = asyncq.current_request()
    for done in range(0, total + 1, 25):
        await request.progress(done, total)  # one write each: report every few percent
        if done == 50:
            halfway.set()
            await go_on.wait()
    return total


async def main() -> None:
    async with app, Worker(app, concurrency=2):
        handle = await import_rows.enqueue(100)
        await halfway.wait()
        progress = await handle.progress()  # or (await handle.info()).progress
        assert progress is not None
        print(await handle.state(), f"{progress.done:g}/{progress.total:g}",
              f"{progress.fraction:.0%}")
        go_on.set()
        print("imported", await handle.get(timeout=5), "rows")


if __name__ == "__main__":
    asyncio.run(main())
