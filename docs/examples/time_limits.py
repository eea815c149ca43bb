"""Soft and hard time limits: cancellation with clean-up, and the worker that stops waiting."""

import asyncio
import time

from asyncq import App, TaskFailed, Worker

app = App("limits", broker="memory://limits")


# soft limit: the task is cancelled at 0.2 s, so its clean-up runs; the hard limit (2 s)
# bounds how long that clean-up may take
@app.task(name="video.transcode", soft_timeout=0.2, timeout=2)
async def transcode(clip: str) -> None:
    try:
        await asyncio.sleep(10)  # stands in for the real work
    except asyncio.CancelledError:
        print(f"transcode({clip}): cancelled, removing the partial file")
        raise
    finally:
        print(f"transcode({clip}): finally ran")


# only a hard limit: cancelled at 0.2 s, then clean-up gets a short grace (1 s)
@app.task(name="report.render", timeout=0.2)
async def render(report: str) -> None:
    try:
        await asyncio.sleep(10)
    finally:
        print(f"render({report}): finally ran")


# a task that swallows its cancellation: the worker stops waiting at the hard limit,
# records the failure and frees the slot; the coroutine itself is abandoned, not killed
@app.task(name="legacy.stubborn", soft_timeout=0.1, timeout=0.3)
async def stubborn() -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0.5)  # ignores the cancellation for a while
        print("stubborn: still running after the hard limit")


async def main() -> None:
    async with app, Worker(app, concurrency=10):
        for call in (transcode.enqueue("intro.mov"), render.enqueue("q3"), stubborn.enqueue()):
            handle = await call
            started = time.monotonic()
            try:
                await handle.get(timeout=5)
            except TaskFailed as exc:
                print(f"  -> {exc.exc_type}: {exc.exc_message} "
                      f"(after {time.monotonic() - started:.1f}s)")
        await asyncio.sleep(0.5)  # let the abandoned coroutine print before we exit


if __name__ == "__main__":
    asyncio.run(main())
