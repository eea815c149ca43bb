"""Revoke a queued, a delayed and a running task; SCHEDULED with its eta."""

import asyncio
import time

from asyncq import App, TaskRevoked, Worker

app = App("control", broker="memory://control")
started, stopped = asyncio.Event(), asyncio.Event()


@app.task(name="reports.build")
async def build(report: int) -> str:
    return f"report {report} built"


@app.task(name="reports.crunch")
async def crunch() -> str:
    started.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        stopped.set()
        raise
    return "crunched"


async def main() -> None:
    async with app:
        # queued, not run yet: revoke it and it never runs
        queued = await build.options(task_id="report-1").enqueue(1)
        await queued.revoke()
        print("queued:", await queued.state())

        # delayed: SCHEDULED, with the time it is due
        later = await build.options(task_id="report-2", countdown=0.2).enqueue(2)
        info = await later.info()
        assert info is not None
        assert info.eta is not None
        print("delayed:", info.state, "due within 0.2s:", 0 < info.eta - time.time() <= 0.2)
        await app.revoke("report-2")  # by id alone, from any process

        kept = await build.enqueue(3)
        async with Worker(app, concurrency=4):
            print(await kept.get(timeout=5))
            for handle in (queued, later):
                try:
                    await handle.get(timeout=5)
                except TaskRevoked as exc:
                    print(exc)

            # running: terminate=True cancels it (CancelledError at its next await)
            running = await crunch.enqueue()
            await started.wait()
            await running.revoke(terminate=True)
            await asyncio.wait_for(stopped.wait(), 5)
            print("running: cancelled, state", await running.state())


if __name__ == "__main__":
    asyncio.run(main())
