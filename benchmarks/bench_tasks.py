"""Tasks for the benchmarks; broker from ASYNCQ_BENCH_BROKER, queue from ASYNCQ_BENCH_QUEUE."""

from __future__ import annotations

import asyncio
import os

from asyncq import App

app = App("bench", broker=os.environ.get("ASYNCQ_BENCH_BROKER", "redis://127.0.0.1:6379/0"),
          backend=os.environ.get("ASYNCQ_BENCH_BACKEND") or None,
          result_ttl=600)  # ten minutes: runs of millions of tasks leave no day of records
QUEUE = os.environ.get("ASYNCQ_BENCH_QUEUE", "bench")


@app.task(queue=QUEUE)
async def noop(n: int) -> int:
    return n


@app.task(queue=QUEUE)
async def sleep_ms(ms: float) -> None:
    await asyncio.sleep(ms / 1e3)
