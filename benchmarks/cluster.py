"""Drain on a 3-master Redis Cluster vs one Redis, with Redis CPU per task per shard.

    python benchmarks/cluster.py [--tasks 20000] [--pairs 3] [--json out.json]

Starts its own servers (a redis-server, and three cluster-enabled ones joined by
``redis-cli --cluster create``; no persistence, loopback) and alternates the runs
single / single-3-queues / cluster-1-queue / cluster-3-queues in each round, so the
machine's noise hits each alike. A run enqueues ``--tasks`` no-op tasks, starts one worker process
(``asyncq worker -c 100``) and times from the first ack to the last result. CPU is
utime+stime from /proc of every redis-server and of the worker, read at the clock's
start and stop: microseconds per task. The "3 queues" runs spread the same tasks over
three queues whose hash slots are on three different masters (one worker reads all).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from tests._servers.redis_cluster import ClusterNode, RedisCluster, proc_cpu_seconds  # noqa: E402


def single_server(workdir: Path) -> ClusterNode:
    """A plain redis-server (cluster mode off) on a free port."""
    node = ClusterNode(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    node.proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(node.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node.wait_ready()
    return node


def queues_on_distinct_masters(cluster: RedisCluster, prefix: str) -> list[str]:
    found: dict[int, str] = {}
    n = 0
    while len(found) < len(cluster.nodes):
        queue = f"{prefix}-{n}"
        found.setdefault(cluster.owner(RedisCluster.slot_of(f"{{{queue}}}")).port, queue)
        n += 1
    return list(found.values())


def start_worker(queues: list[str], concurrency: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "asyncq",
        "worker",
        "bench_tasks:app",
        "-Q",
        ",".join(queues),
        "-c",
        str(concurrency),
        "-l",
        "warning",
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
    return subprocess.Popen(cmd, env=env, cwd=HERE, stderr=subprocess.DEVNULL)


async def one_run(
    url: str, queues: list[str], tasks: int, pids: dict[str, int], concurrency: int
) -> dict[str, Any]:
    os.environ.update(ASYNCQ_BENCH_BROKER=url, ASYNCQ_BENCH_QUEUE=queues[0])
    mod = importlib.reload(importlib.import_module("bench_tasks"))
    app = mod.app
    async with app:
        sigs = [mod.noop.options(queue=queues[i % len(queues)]).s(i) for i in range(tasks)]
        handles = await app.enqueue_many(sigs)
        proc = start_worker(queues, concurrency)
        try:

            async def waiting() -> int:
                return sum([await app.broker.queue_size(q) for q in queues])

            while await waiting() >= tasks:  # noqa: ASYNC110 - excludes start-up
                await asyncio.sleep(0.002)
            cpu0 = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
            worker0 = proc_cpu_seconds(proc.pid)
            start = time.perf_counter()
            while await waiting() > 0:  # noqa: ASYNC110 - polls the broker
                await asyncio.sleep(0.005)
            for handle in handles[-len(queues) :]:
                await handle.get(timeout=120)
            elapsed = time.perf_counter() - start
            cpu1 = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
            worker1 = proc_cpu_seconds(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        for queue in queues:
            await app.broker.delete_queue(queue)
    per_task = {name: (cpu1[name] - cpu0[name]) / tasks * 1e6 for name in pids}
    return {
        "tasks_per_s": tasks / elapsed,
        "seconds": elapsed,
        "redis_cpu_us_per_task": per_task,
        "redis_cpu_us_per_task_total": sum(per_task.values()),
        "worker_cpu_us_per_task": (worker1 - worker0) / tasks * 1e6,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="asyncq-bench-cluster-"))
    single = single_server(tmp / "single")
    cluster = RedisCluster(3)
    try:
        cluster.start()
        prefix = f"bc-{uuid.uuid4().hex[:6]}"
        spread = queues_on_distinct_masters(cluster, prefix)
        shard_pids = {f"shard{i}:{n.port}": n.pid for i, n in enumerate(cluster.nodes)}
        kinds = {
            "single": (
                f"redis://127.0.0.1:{single.port}/0",
                [f"{prefix}-s"],
                {"single": single.pid},
            ),
            "single_3_queues": (
                f"redis://127.0.0.1:{single.port}/0",
                spread,
                {"single": single.pid},
            ),
            "cluster_1_queue": (cluster.url, [spread[0]], shard_pids),
            "cluster_3_queues": (cluster.url, spread, shard_pids),
        }
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for _ in range(args.pairs):
            for kind, (url, queues, pids) in kinds.items():
                runs[kind].append(await one_run(url, queues, args.tasks, pids, args.concurrency))
                print(kind, json.dumps(runs[kind][-1]), flush=True)
    finally:
        cluster.stop()
        single.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "tasks": args.tasks,
        "pairs": args.pairs,
        "concurrency": args.concurrency,
        "runs": runs,
        "summary": summary(runs),
    }


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, samples in runs.items():
        out[kind] = {
            "tasks_per_s_median": statistics.median(s["tasks_per_s"] for s in samples),
            "redis_cpu_us_per_task_total_median": statistics.median(
                s["redis_cpu_us_per_task_total"] for s in samples
            ),
            "worker_cpu_us_per_task_median": statistics.median(
                s["worker_cpu_us_per_task"] for s in samples
            ),
            "redis_cpu_us_per_task_by_server_median": {
                name: statistics.median(s["redis_cpu_us_per_task"][name] for s in samples)
                for name in samples[0]["redis_cpu_us_per_task"]
            },
        }
    base = out["single"]["tasks_per_s_median"]
    for kind in out:
        out[kind]["throughput_vs_single"] = out[kind]["tasks_per_s_median"] / base
    return out


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--json", type=Path)
    return p.parse_args()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    args = parse()
    result = asyncio.run(main(args))
    print(json.dumps(result["summary"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
