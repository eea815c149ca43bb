"""asyncq: the project itself, from the project environment (not the peers venv)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from asyncq import App
from peers.base import AMQP_URL, BROKER, PREFIX, REDIS_URL, SLEEP
from peers.base import Client as BaseClient
from peers.ledger import LEDGER

PACKAGES = ["asyncq", "redis", "aio-pika", "uvloop"]
app = App(PREFIX, broker=AMQP_URL if BROKER == "amqp" else REDIS_URL,
          backend=REDIS_URL if BROKER == "amqp" else None)


@app.task(queue=PREFIX)
async def noop(n: int) -> int:
    LEDGER.begin()
    LEDGER.end()
    return n


@app.task(queue=PREFIX)
async def sleep(n: int) -> int:
    LEDGER.begin()
    await asyncio.sleep(SLEEP)
    LEDGER.end()
    return n


TASKS = {"noop": noop, "sleep": sleep}


def config(concurrency: int) -> str:
    broker = "RabbitMQ, results in Redis" if BROKER == "amqp" else "Redis Streams"
    return (f"App(broker=..., {broker}); `asyncq worker -Q <q> -c {concurrency} -l warning` "
            "(uvloop, default prefetch = concurrency)")


def worker_argv(concurrency: int) -> list[str]:
    return ["-m", "asyncq", "worker", "peers.asyncq_bench:app", "-Q", PREFIX,
            "-c", str(concurrency), "-l", "warning"]


class Client(BaseClient):
    batch = "app.enqueue_many"

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def start(self) -> None:
        await app.connect()

    async def close(self) -> None:
        await app.close()

    async def enqueue(self, task: str, arg: int) -> Any:
        handle = await TASKS[task].enqueue(arg)
        self.ids.append(handle.id)
        return handle

    async def enqueue_batch(self, task: str, args: Iterable[int]) -> None:
        handles = await app.enqueue_many([TASKS[task].s(a) for a in args])
        self.ids.extend(h.id for h in handles)

    async def result(self, handle: Any, timeout: float) -> Any:
        return await handle.get(timeout=timeout)

    async def cleanup(self) -> None:
        await app.broker.delete_queue(PREFIX)
        client = getattr(app.backend, "client", None)
        if client is not None and self.ids:
            for i in range(0, len(self.ids), 5000):
                await client.delete(*(f"asyncq:result:{t}" for t in self.ids[i:i + 5000]))

