"""Result handles: await, timeouts, states, handles from ids, forget, and expiry."""

import asyncio

from asyncq import App, ResultTimeout, TaskFailed, Worker

# results expire after 0.5 s here to show expiry; the default is 24 hours
app = App("results", broker="memory://results", result_ttl=0.5)


@app.task(name="reports.build")
async def build_report(month: str, seconds: float = 0.0) -> dict[str, object]:
    await asyncio.sleep(seconds)
    if month == "13":
        raise ValueError(f"no month {month}")
    return {"month": month, "rows": 1200}


async def main() -> None:
    async with app, Worker(app, concurrency=10):
        handle = await build_report.enqueue("2024-05")
        print(await handle)                              # wait as long as it takes
        print(await handle.get(timeout=5))               # or at most 5 s
        print(await handle.state(), await handle.ready(), await handle.successful())

        # a handle from an id alone: in another request, process or service
        task_id = handle.id
        again = app.result(task_id)
        record = await again.info()                      # the stored record, or None
        assert record is not None
        print("by id:", record.state, record.value, record.task, record.attempt)

        await again.forget()                             # delete the stored result
        print("forgotten:", await again.state())         # PENDING: nothing is known
        print("unknown id:", await app.result("no-such-task").state())

        slow = await build_report.enqueue("2024-06", seconds=0.3)
        try:
            await slow.get(timeout=0.05)
        except ResultTimeout as exc:                     # also a builtin TimeoutError
            print("not yet:", exc, "| state:", await slow.state())
        print("later:", await slow.get(timeout=5))       # the task was not disturbed

        bad = await build_report.enqueue("13")
        try:
            await bad
        except TaskFailed as exc:
            print("failed:", exc.exc_type, exc.exc_message)
            print("traceback ends with:", (exc.traceback or "").strip().splitlines()[-1])
        print(await bad.failed(), (await bad.traceback() or "").splitlines()[0])

        kept = await build_report.enqueue("2024-07")
        await kept
        await asyncio.sleep(0.6)                         # longer than result_ttl
        print("expired:", await kept.state())


if __name__ == "__main__":
    asyncio.run(main())
