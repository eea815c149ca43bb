"""The core figures: round trip, drain through one worker process, concurrent enqueue.

    python benchmarks/core.py --broker redis://127.0.0.1:6379/0 [--observe] [--json out.json]

Workers are real processes started through the CLI (``asyncq worker``), logging at
WARNING so that log I/O is not what we measure. ``--observe`` starts them with
everything an operator turns on (``--events --metrics-port PORT``: heartbeats, task
events, control, Prometheus metrics); ``benchmarks/ab.py --after-args=--observe``
alternates runs with and without it, which is how the cost of observing is measured.

``--pin`` (Linux) puts this process, the producer, on CPU 0 and the workers, with any
``--pin-pid`` (the local Redis, say), on the other CPUs: a web app on cores of its own.
On a 2-core machine the drain needs one core (worker and Redis) and the fan-in a second
one for the producer; unpinned, three busy processes share two cores as the scheduler
places them.

``--sched`` (Linux) adds, to the drain, the fan-in and the concurrent enqueue, where
their time went (``sched_share.py``): each process's CPU per task and its time waiting
for a CPU, and the machine's idle cores; ``--broker-pid`` names the broker's process
(the local Redis or RabbitMQ) so that it is counted too. ``--uvloop`` runs the producer
on uvloop, as uvicorn runs a web app where uvloop is installed (the workers always do).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sched_share

HERE = Path(__file__).resolve().parent


def _env(broker: str, queue: str, backend: str | None) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, ASYNCQ_BENCH_BROKER=broker, ASYNCQ_BENCH_QUEUE=queue,
               PYTHONPATH=path)
    if backend:
        env["ASYNCQ_BENCH_BACKEND"] = backend
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The worker options of ``--observe``: events (with heartbeats and control) and metrics.
OBSERVE = ["--events"]

#: ``--sched``: the processes counted besides this one and the workers (name -> pid)
SCHED: dict[str, int] | None = None


def _phase(workers: list[subprocess.Popen[bytes]] | None = None) -> sched_share.Phase | None:
    """Counters for a timed phase under ``--sched``: this process (the producer), the
    ``workers`` and the broker."""
    if SCHED is None:
        return None
    pids = {"producer": os.getpid(), **SCHED}
    for i, proc in enumerate(workers or []):
        pids[f"worker{i or ''}"] = proc.pid
    return sched_share.Phase(pids)


def _sched(phase: sched_share.Phase | None, out: dict[str, Any]) -> dict[str, Any]:
    """``out`` with the phase's report under "sched" (with ``--sched``)."""
    if phase is not None:
        out["sched"] = phase.report(int(out["tasks"]), float(out["seconds"]))
    return out


#: ``--pin``: (this producer's CPUs, the workers' CPUs), None when not pinned.
PINNED: tuple[set[int], set[int]] | None = None


@contextlib.contextmanager
def pinned(on: bool, others: list[int]) -> Iterator[None]:
    """With ``on``: this process (the producer) on CPU 0, the workers and the ``others``
    pids (a local broker, say) on the rest, as when a web app runs on cores of its own;
    the others get their CPUs back at the end."""
    global PINNED
    cpus = sorted(os.sched_getaffinity(0))
    if not on or len(cpus) < 2:
        yield
        return
    PINNED = ({cpus[0]}, set(cpus[1:]))
    saved = {pid: os.sched_getaffinity(pid) for pid in others}
    os.sched_setaffinity(0, PINNED[0])
    for pid in others:
        os.sched_setaffinity(pid, PINNED[1])
    try:
        yield
    finally:
        for pid, mask in saved.items():
            os.sched_setaffinity(pid, mask)
        os.sched_setaffinity(0, set(cpus))
        PINNED = None


@contextlib.contextmanager
def worker(broker: str, queue: str, backend: str | None, concurrency: int,
           processes: int = 1, observe: bool = False) -> Iterator[list[subprocess.Popen[bytes]]]:
    cmd = [sys.executable, "-m", "asyncq", "worker", "bench_tasks:app", "-Q", queue,
           "-c", str(concurrency), "-l", "warning"]

    def extra() -> list[str]:
        return [*OBSERVE, "--metrics-port", str(_free_port())] if observe else []

    procs = [subprocess.Popen([*cmd, *extra()], env=_env(broker, queue, backend), cwd=HERE,
                              stderr=subprocess.DEVNULL) for _ in range(processes)]
    for proc in procs if PINNED else []:
        os.sched_setaffinity(proc.pid, PINNED[1])
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def _load(broker: str, queue: str, backend: str | None) -> Any:
    os.environ.update(_env(broker, queue, backend))
    sys.path.insert(0, str(HERE))
    import bench_tasks

    return bench_tasks


async def round_trip(mod: Any, n: int) -> dict[str, float]:
    for i in range(50):  # warm up connections and subscriptions
        await (await mod.noop.enqueue(i))
    samples = []
    for i in range(n):
        start = time.perf_counter()
        assert await (await mod.noop.enqueue(i)) == i
        samples.append(time.perf_counter() - start)
    samples.sort()
    return {"p50_ms": samples[n // 2] * 1e3, "p99_ms": samples[int(n * 0.99) - 1] * 1e3}


async def enqueue_concurrent(mod: Any, n: int) -> dict[str, Any]:
    await mod.noop.enqueue(-1)  # connected, queue declared: as an app is after its first
    phase, start = _phase(), time.perf_counter()
    await asyncio.gather(*(mod.noop.enqueue(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    return _sched(phase, {"tasks": n, "seconds": elapsed, "per_s": n / elapsed})


async def enqueue_batch(mod: Any, n: int) -> tuple[dict[str, float], Any]:
    start = time.perf_counter()
    handles = await mod.app.enqueue_many([mod.noop.s(i) for i in range(n)])
    elapsed = time.perf_counter() - start
    return {"tasks": n, "seconds": elapsed, "per_s": n / elapsed}, handles[-1]


async def _timed_drain(mod: Any, args: argparse.Namespace, n: int, last: Any,
                       processes: int = 1) -> dict[str, Any]:
    """Start workers on ``n`` queued tasks; time from the first ack to the last result.

    The queue being empty is not enough: RabbitMQ counts only ready messages, not the
    ones a worker holds, so the clock stops when the last task's result is in too.
    """
    size = mod.app.broker.queue_size
    with worker(args.broker, mod.QUEUE, args.backend, args.concurrency, processes,
                args.observe) as procs:
        while await size(mod.QUEUE) >= n:  # noqa: ASYNC110 - polls the broker: excludes start-up
            await asyncio.sleep(0.005)
        phase, start, cpu = _phase(procs), time.perf_counter(), _cpu(procs)
        while await size(mod.QUEUE) > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await last.get(timeout=60)
        elapsed = max(time.perf_counter() - start, 1e-6)
        cpu = _cpu(procs) - cpu
        return _sched(phase, {"tasks": n, "seconds": elapsed, "per_s": n / elapsed,
                              "processes": processes, "cpu_us_per_task": cpu / n * 1e6})


def _cpu(procs: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds (user + system) the worker processes used so far (Linux ``/proc``;
    0 elsewhere). Less sensitive to a busy machine than the drain's wall-clock time."""
    total = 0.0
    for proc in procs:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def drain(mod: Any, args: argparse.Namespace, n: int, processes: int = 1) -> dict[str, Any]:
    handles = await mod.app.enqueue_many([mod.noop.s(i) for i in range(n)])
    return await _timed_drain(mod, args, n, handles[-1], processes)


async def fan_in(mod: Any, n: int, inflight: int, procs: list[subprocess.Popen[bytes]],
                 timeout: float | None = None) -> dict[str, Any]:
    """``n`` calls, at most ``inflight`` at a time, each enqueued then awaited (a web app
    awaiting the tasks it sends), with one worker running: first enqueue to last result."""
    await (await mod.noop.enqueue(-1))  # the worker is up
    calls = iter(range(n))

    async def caller() -> None:  # (not a Semaphore: in 3.11 its release is O(waiters))
        for i in calls:
            assert await (await mod.noop.enqueue(i)) == i

    async def caller_within() -> None:  # --fan-in-timeout: as a careful web app waits
        for i in calls:
            assert await (await mod.noop.enqueue(i)).get(timeout=timeout) == i

    phase, start, cpu = _phase(procs), time.perf_counter(), time.process_time()
    each = caller if timeout is None else caller_within
    await asyncio.gather(*(each() for _ in range(inflight)))
    elapsed = time.perf_counter() - start
    return _sched(phase, {"tasks": n, "seconds": elapsed, "per_s": n / elapsed,
                          "inflight": inflight, "timeout": timeout,
                          "producer_cpu_us": (time.process_time() - cpu) / n * 1e6,
                          "cpus": _cpus(procs)})


def _cpus(procs: list[subprocess.Popen[bytes]]) -> dict[str, list[int]] | None:
    """The CPUs the producer and the first worker may run on (Linux), as ``--pin`` left
    them: where the fan-in ran."""
    if not hasattr(os, "sched_getaffinity") or not procs:
        return None
    return {"producer": sorted(os.sched_getaffinity(0)),
            "worker": sorted(os.sched_getaffinity(procs[0].pid))}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    mod = _load(args.broker, queue, args.backend)
    out: dict[str, Any] = {"broker": args.broker.split("@")[-1], "queue": queue,
                           "observe": args.observe}
    async with mod.app:
        gc.collect()  # each timed phase starts with no garbage left by the one before
        out["enqueue_concurrent"] = await enqueue_concurrent(mod, args.enqueue)
        gc.collect()
        out["enqueue_batch"], last = await enqueue_batch(mod, args.enqueue)
        gc.collect()
        out["drain_backlog_first"] = await drain_existing(mod, args, last)
        gc.collect()
        out["drain"] = await drain(mod, args, args.drain)
        gc.collect()
        with worker(args.broker, queue, args.backend, args.concurrency,
                    observe=args.observe) as procs:
            out["round_trip"] = await round_trip(mod, args.round_trip)
            if args.fan_in:
                out["fan_in"] = await fan_in(mod, args.fan_in, args.inflight, procs,
                                             args.fan_in_timeout)
        if args.fan_in:  # the drain it is compared with, timed the same way (to the last result)
            out["fan_in"]["vs_drain"] = out["fan_in"]["per_s"] / out["drain"]["per_s"]
        await mod.app.broker.delete_queue(queue)
    return out


async def drain_existing(mod: Any, args: argparse.Namespace, last: Any) -> dict[str, float]:
    """Consume what the enqueue runs left behind (and time it, as a second drain sample)."""
    return await _timed_drain(mod, args, await mod.app.broker.queue_size(mod.QUEUE), last)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    p.add_argument("--backend", default=None)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--round-trip", type=int, default=1000)
    p.add_argument("--drain", type=int, default=20000)
    p.add_argument("--enqueue", type=int, default=20000)
    p.add_argument("--observe", action="store_true",
                   help="Workers with --events and --metrics-port (what observing costs).")
    p.add_argument("--fan-in", type=int, default=20000,
                   help="calls awaited one by one while a worker runs (0: skip)")
    p.add_argument("--inflight", type=int, default=1000, help="fan-in calls at a time")
    p.add_argument("--fan-in-timeout", type=float, default=None,
                   help="fan-in calls await handle.get(timeout=...) instead of the handle")
    p.add_argument("--pin", action="store_true",
                   help="producer on CPU 0, workers (and --pin-pid) on the other CPUs (Linux)")
    p.add_argument("--pin-pid", type=int, action="append", default=[],
                   help="with --pin: a process (the local broker) moved to the workers' CPUs")
    p.add_argument("--uvloop", action="store_true",
                   help="the producer on uvloop (as uvicorn runs a web app), not asyncio's loop")
    p.add_argument("--sched", action="store_true",
                   help="per phase: each process's CPU and wait for a CPU, idle cores (Linux)")
    p.add_argument("--broker-pid", type=int, default=None,
                   help="with --sched: the broker's process, counted too")
    p.add_argument("--json", type=Path)
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.sched:
        SCHED = {} if arguments.broker_pid is None else {"broker": arguments.broker_pid}
    with pinned(arguments.pin, arguments.pin_pid):
        if arguments.uvloop:
            import uvloop

            result = uvloop.run(main(arguments))
        else:
            result = asyncio.run(main(arguments))
    result["pinned"] = arguments.pin
    result["producer_loop"] = "uvloop" if arguments.uvloop else "asyncio"
    text = json.dumps(result, indent=2)
    print(text)
    if arguments.json:
        arguments.json.write_text(text + "\n")
