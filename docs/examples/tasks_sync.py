"""Plain ``def`` tasks: run in the worker's bounded thread pool."""

import asyncio
import threading
import time

import asyncq
from asyncq import App, Worker

app = App("sync-tasks", broker="memory://sync-tasks")


@app.task(name="images.resize")
def resize(path: str, width: int) -> str:
    # blocking code (a C library, requests, an ORM) is fine here: this runs in a thread
    time.sleep(0.2)
    request = asyncq.current_request()  # works in threads too
    return f"{path} at {width}px (attempt {request.attempt}, {threading.current_thread().name})"


async def main() -> None:
    async with app, Worker(app, concurrency=10, threads=4):
        started = time.monotonic()
        handles = [await resize.enqueue(f"img{n}.png", 640) for n in range(8)]
        results = [await h.get(timeout=5) for h in handles]
        print(results[0].split(",")[0] + ")")
        # 8 calls of 0.2 s on 4 threads: two rounds, about 0.4 s
        print(f"8 resizes on 4 threads in {time.monotonic() - started:.1f}s")
        print("threads used:", len({r.rsplit(", ", 1)[1] for r in results}))


if __name__ == "__main__":
    asyncio.run(main())
