"""Run ONE workload for ONE library and print its figures as one JSON line.

    cd benchmarks && python -m peers.driver peers.arq_bench drain --n 20000 --concurrency 100

It runs in the library's own interpreter with ``BENCH_*`` set by ``suite.py``; the
workers it starts are real processes (``python <worker_argv>``), stopped afterwards, and
every Redis key holding the run's prefix is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import os
import time
from types import ModuleType
from typing import Any

import redis.asyncio as aioredis

from peers import ledger
from peers.base import PREFIX, REDIS_URL
from peers.procs import CpuSampler, RssSampler, workers

#: tasks per preload round (not timed): batches of 10,000, or 1,000 single enqueues
#: in flight at once (10,000 concurrent taskiq kiqs outwait its Redis pool's timeout)
CHUNK, CHUNK_EACH = 10_000, 1_000


def versions(mod: ModuleType) -> dict[str, str]:
    out = {}
    for name in mod.PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


async def timed_enqueue(coro: Any, n: int) -> dict[str, float]:
    start = time.perf_counter()
    await coro
    seconds = time.perf_counter() - start
    return {"tasks": n, "seconds": round(seconds, 4), "per_s": round(n / seconds, 1)}


async def w_enqueue(mod: ModuleType, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    await client.enqueue_each("noop", range(min(args.n, 100)))  # warm-up: pools, scripts
    out: dict[str, Any] = {"how": client.each, "batch_api": client.batch}
    out["each"] = await timed_enqueue(client.enqueue_each("noop", range(args.n)), args.n)
    out["batch"] = None
    if client.batch:
        out["batch"] = await timed_enqueue(client.enqueue_batch("noop", range(args.n)), args.n)
    return out


async def preload(client: Any, task: str, n: int) -> None:
    size = CHUNK if client.batch else CHUNK_EACH
    for start in range(0, n, size):
        chunk = range(start, min(n, start + size))
        await (client.enqueue_batch(task, chunk) if client.batch
               else client.enqueue_each(task, chunk))


async def wait_ledger(group: Any, n: int, timeout: float) -> tuple[float, float, int]:
    """Poll the ledger until ``n`` tasks are done; (first start, last finish, done)."""
    rds = aioredis.Redis.from_url(REDIS_URL)
    deadline, done = time.monotonic() + timeout, 0
    try:
        while time.monotonic() < deadline:
            first, last, done = ledger.read_raw(await rds.hgetall(f"{PREFIX}:ledger"))
            if done >= n:
                return first, last, done
            group.check()
            await asyncio.sleep(0.05)
    finally:
        await rds.aclose()
    raise TimeoutError(f"{done}/{n} tasks done after {timeout:.0f} s: {group.tail()}")


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    return dict(os.environ, BENCH_CONCURRENCY=str(args.concurrency))


async def w_drain(mod: ModuleType, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Queue n tasks, then time first start → last finish over ``--procs`` workers."""
    await preload(client, args.task, args.n)
    argv = mod.worker_argv(args.concurrency)
    cpu = CpuSampler(REDIS_URL)
    cpu.start()
    with workers(argv, args.procs, worker_env(args)) as group:
        sampler = RssSampler([p.pid for p in group.procs])
        if args.rss:
            sampler.start()
        try:
            first, last, _ = await wait_ledger(group, args.n, args.timeout)
        finally:
            sampler.done.set()
            cpu.done.set()
    cpu.join(2)
    seconds = max(last - first, 1e-6)
    out = {"tasks": args.n, "seconds": round(seconds, 4), "per_s": round(args.n / seconds, 1),
           "processes": args.procs, "concurrency": args.concurrency,
           "cpu": cpu.window(first, last)}
    if args.rss:
        out.update(peak_rss_mb=round(sampler.peak / 2**20, 1), rss_samples=sampler.samples)
    return out


async def worker_up(client: Any, within: float = 120.0) -> None:
    """Wait until the worker answers a probe call. A probe that times out or comes back
    without its value (SAQ marks a job its worker swept while still starting as done,
    with no result) is sent again until ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        try:
            if await client.result(await client.enqueue("noop", -1), min(30.0, left)) == -1:
                return
        except TimeoutError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the worker did not answer a probe call within {within:.0f} s")


async def w_round_trip(mod: ModuleType, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    with workers(mod.worker_argv(args.concurrency), 1, worker_env(args)):
        await worker_up(client)
        for i in range(20):  # warm-up
            await client.result(await client.enqueue("noop", i), 30)
        samples = []
        for i in range(args.n):
            start = time.perf_counter()
            assert await client.result(await client.enqueue("noop", i), 30) == i
            samples.append(time.perf_counter() - start)
    samples.sort()
    return {"tasks": args.n, "p50_ms": round(samples[len(samples) // 2] * 1e3, 3),
            "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)] * 1e3, 3)}


async def w_fan_in(mod: ModuleType, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """W6: ``n`` calls, each enqueued and its result awaited (``client.fan_in``: at most
    ``--inflight`` at a time), one worker running; first enqueue to last result."""
    with workers(mod.worker_argv(args.concurrency), 1, worker_env(args)) as group:
        await worker_up(client)
        start, cpu = time.perf_counter(), time.process_time()
        values = await client.fan_in("noop", args.n, args.inflight, args.timeout)
        seconds = time.perf_counter() - start
        producer_cpu = time.process_time() - cpu
        group.check()
    if sorted(values) != list(range(args.n)):
        raise AssertionError(f"fan-in got {len(values)} results, not 0..{args.n - 1}")
    return {"tasks": args.n, "seconds": round(seconds, 4), "per_s": round(args.n / seconds, 1),
            "inflight": args.inflight, "how": client.fan_in_how,
            "producer_cpu_us": round(producer_cpu / args.n * 1e6, 1)}


WORKLOADS = {"enqueue": w_enqueue, "drain": w_drain, "round_trip": w_round_trip,
             "fan_in": w_fan_in}


async def sweep() -> None:
    rds = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in rds.scan_iter(match=f"*{PREFIX}*", count=1000)]
        for i in range(0, len(keys), 1000):
            await rds.delete(*keys[i:i + 1000])
    finally:
        await rds.aclose()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    mod = importlib.import_module(args.module)
    client = mod.Client()
    await client.start()
    try:
        figures = await WORKLOADS[args.workload](mod, client, args)
    finally:
        try:
            await client.cleanup()
        finally:
            await client.close()
            await sweep()
    return {"figures": figures, "versions": versions(mod),
            "config": mod.config(args.concurrency)}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("module")
    p.add_argument("workload", choices=sorted(WORKLOADS))
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--task", default="noop", choices=["noop", "sleep"])
    p.add_argument("--rss", action="store_true", help="sample the workers' RSS")
    p.add_argument("--inflight", type=int, default=1000, help="fan_in: calls at a time")
    p.add_argument("--timeout", type=float, default=600)
    return p.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(parse()))))
