"""memory:// across event loops: a worker on one loop (thread), the producer on another.

This is the shape of a web app under Starlette's TestClient (the app runs on the
client's own loop in a thread). A wake-up must cross threads with
``call_soon_threadsafe``, or the other loop sleeps until its next timer.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import asyncq

#: Longer than any bound below: a wake-up that does not cross loops waits this long.
SLEEPY = 3.0


def _app(url: str) -> asyncq.App:
    app = asyncq.App("loops", broker=url)

    @app.task(name="loops.double")
    async def double(x: int) -> int:
        return 2 * x

    return app


class WorkerThread:
    """A worker on its own event loop in a thread, with its own App on ``url``."""

    def __init__(self, url: str) -> None:
        self.app = _app(url)
        self.worker = asyncq.Worker(self.app, concurrency=4, fetch_timeout=SLEEPY,
                                    loop_lag_threshold=None)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete,
                                       args=(self.worker.run(),), daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.worker.started.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.worker.started.is_set()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.worker.abort)
        self.thread.join(SLEEPY + 5)
        self.loop.close()


@pytest.fixture
def worker_thread() -> Iterator[tuple[str, WorkerThread]]:
    url = f"memory://loops-{uuid.uuid4().hex[:8]}"
    thread = WorkerThread(url)
    thread.start()
    yield url, thread
    thread.stop()


async def test_result_crosses_loops_promptly(worker_thread: tuple[str, WorkerThread]) -> None:
    url, _ = worker_thread
    producer = _app(url)
    double: Any = producer.tasks["loops.double"]
    async with producer:
        await asyncio.sleep(0.1)  # the worker is now blocked in a long fetch on its loop
        started = time.monotonic()
        handles = [await double.enqueue(n) for n in range(20)]
        results = [await handle.get(timeout=SLEEPY - 1) for handle in handles]
        elapsed = time.monotonic() - started
    assert results == [2 * n for n in range(20)]
    assert elapsed < 1.5, f"took {elapsed:.2f}s: a wake-up waited for a timer"
