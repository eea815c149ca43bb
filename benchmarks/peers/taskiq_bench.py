"""taskiq 0.13: taskiq-redis's RedisStreamBroker (BENCH_BROKER=redis) or taskiq-aio-pika's
AioPikaBroker (BENCH_BROKER=amqp), results in Redis (RedisAsyncResultBackend) for both.

Worker: ``taskiq worker mod:broker --workers 1 --max-async-tasks N --log-level WARNING``.
``wait_result(check_interval=0.01)`` instead of the 0.2 s default (it polls).  The
aio-pika broker's ``qos`` is 2 x concurrency (its default of 10 would cap a 100-task
worker at 10 messages in flight); its queues keep their default type (quorum).
taskiq has no batch enqueue API.
"""

from __future__ import annotations

import asyncio
from typing import Any

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from peers.base import AMQP_URL, BROKER, CONCURRENCY, PREFIX, REDIS_URL, SLEEP
from peers.base import Client as BaseClient
from peers.ledger import LEDGER

PACKAGES = ["taskiq", "taskiq-redis", "taskiq-aio-pika", "redis", "aio-pika"]
POLL = 0.01
DEAD = f"{PREFIX}.dead_letter"


def make_broker() -> Any:
    if BROKER == "amqp":
        from taskiq_aio_pika import AioPikaBroker, Exchange, Queue

        broker: Any = AioPikaBroker(AMQP_URL, qos=2 * CONCURRENCY, exchange=Exchange(name=PREFIX),
                                    task_queues=[Queue(name=PREFIX)],
                                    dead_letter_queue=Queue(name=DEAD))
    else:
        broker = RedisStreamBroker(REDIS_URL, queue_name=PREFIX, consumer_group_name=PREFIX)
    return broker.with_result_backend(RedisAsyncResultBackend(REDIS_URL, prefix_str=PREFIX))


broker = make_broker()


@broker.task(task_name="noop")
async def noop(n: int) -> int:
    LEDGER.begin()
    LEDGER.end()
    return n


@broker.task(task_name="sleep")
async def sleep(n: int) -> int:
    LEDGER.begin()
    await asyncio.sleep(SLEEP)
    LEDGER.end()
    return n


TASKS = {"noop": noop, "sleep": sleep}


def config(concurrency: int) -> str:
    kind = (f"AioPikaBroker(url, qos={2 * concurrency})" if BROKER == "amqp"
            else "RedisStreamBroker(url, queue_name=q)")
    return (f"{kind}.with_result_backend(RedisAsyncResultBackend(url)); `taskiq worker "
            f"--workers 1 --max-async-tasks {concurrency} --log-level WARNING`; "
            f"wait_result(check_interval={POLL})")


def worker_argv(concurrency: int) -> list[str]:
    return ["-m", "taskiq", "worker", "peers.taskiq_bench:broker", "--workers", "1",
            "--max-async-tasks", str(concurrency), "--log-level", "WARNING"]


class Client(BaseClient):
    async def start(self) -> None:
        await broker.startup()

    async def close(self) -> None:
        await broker.shutdown()

    async def enqueue(self, task: str, arg: int) -> Any:
        return await TASKS[task].kiq(arg)

    async def result(self, handle: Any, timeout: float) -> Any:
        return (await handle.wait_result(check_interval=POLL, timeout=timeout)).return_value

    async def cleanup(self) -> None:
        if BROKER == "amqp":
            channel = broker.write_channel
            for name in (PREFIX, DEAD):
                await channel.queue_delete(name)
            await channel.exchange_delete(PREFIX)
