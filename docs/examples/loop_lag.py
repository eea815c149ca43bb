"""The loop-lag watchdog names a task that blocks the event loop."""

import asyncio
import logging
import sys
import time

from asyncq import App, Worker

logging.basicConfig(stream=sys.stdout, level=logging.WARNING,
                    format="%(levelname)s %(name)s: %(message)s")

app = App("loop-lag", broker="memory://loop-lag")


@app.task(name="pdf.render")
async def render_pdf(pages: int) -> int:
    time.sleep(0.6)  # noqa: ASYNC251 - blocks the loop: nothing else in the worker runs
    return pages


@app.task(name="pdf.render_politely")
async def render_pdf_politely(pages: int) -> int:
    await asyncio.to_thread(time.sleep, 0.6)  # the same work off the event loop
    return pages


async def main() -> None:
    # the CLI's --loop-lag (default 1 s); lowered here so the example is quick
    async with app, Worker(app, loop_lag_threshold=0.3):
        await (await render_pdf.enqueue(12)).get(timeout=5)
        await asyncio.sleep(0.2)
        await (await render_pdf_politely.enqueue(12)).get(timeout=5)
        print("done")


if __name__ == "__main__":
    asyncio.run(main())
