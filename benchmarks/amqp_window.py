"""RabbitMQ: one-at-a-time enqueues against the publisher's confirm window.

    python benchmarks/amqp_window.py [--broker amqp://guest:guest@127.0.0.1:5672/]
        [--backend redis://127.0.0.1:6379/0] [--windows 8,16,32,64] [--n 30000]
        [--rounds 5] [--beam-pid PID] [--json out.json]

The publisher writes concurrent enqueues in batches and lets up to ``_WINDOW`` written
batches await their confirms at once (asyncq/brokers/amqp/_publisher.py). This runs
``n`` concurrent ``await noop.enqueue(i)`` (W1, one at a time) and ``n`` through
``enqueue_many`` for each window size, the sizes taking turns ``--rounds`` times, and
prints the median rates with the producer's and RabbitMQ's CPU per message and the
machine's idle cores (``sched_share.py``; ``--beam-pid``, else the oldest
``beam.smp``). Each round uses a fresh durable queue, deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import sched_share

from asyncq import App
from asyncq.brokers.amqp import _publisher


async def one_round(broker: str, backend: str, window: int, n: int, beam: int | None
                    ) -> dict[str, Any]:
    """Both enqueue figures for one window size, on a queue of its own."""
    _publisher._WINDOW = window  # read when a publisher is made (App.connect)
    queue = f"bench-window-{uuid.uuid4().hex[:8]}"
    app = App("bench-window", broker=broker, backend=backend)

    @app.task(queue=queue)
    async def noop(i: int) -> int:
        return i

    async with app:
        await noop.enqueue(-1)  # the queue is declared, the connection warm
        pids = {"producer": os.getpid(), **({"broker": beam} if beam else {})}
        phase, start = sched_share.Phase(pids), time.perf_counter()
        await asyncio.gather(*(noop.enqueue(i) for i in range(n)))
        one = time.perf_counter() - start
        report = phase.report(n, one)
        start = time.perf_counter()
        await app.enqueue_many([noop.s(i) for i in range(n)])
        batch = time.perf_counter() - start
        await app.broker.delete_queue(queue)
    return {"window": window, "one_at_a_time_per_s": n / one, "batch_per_s": n / batch,
            "sched": report}


def _beam(given: int | None) -> int | None:
    if given:
        return given
    found = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True,
                           check=False).stdout.split()
    return int(found[0]) if found else None


def summary(runs: list[dict[str, Any]], window: int) -> dict[str, Any]:
    mine = [r for r in runs if r["window"] == window]

    def med(get: Any) -> float:
        values = [get(r) for r in mine]
        return float(statistics.median(v for v in values if v is not None))

    out = {"window": window, "rounds": len(mine),
           "one_at_a_time_per_s": med(lambda r: r["one_at_a_time_per_s"]),
           "batch_per_s": med(lambda r: r["batch_per_s"])}
    if all(r["sched"] for r in mine):
        out["idle_cores"] = med(lambda r: r["sched"]["idle_cores"])
        for name in mine[0]["sched"]:
            if name != "idle_cores":
                out[f"{name}_cpu_us"] = med(lambda r, k=name: r["sched"][k]["cpu_us_per_task"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--backend", default="redis://127.0.0.1:6379/0",
                   help="results (not awaited here), as core.py --backend")
    p.add_argument("--windows", default="8,16,32,64")
    p.add_argument("--n", type=int, default=30000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--beam-pid", type=int, default=None)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    beam = _beam(args.beam_pid)
    runs = [asyncio.run(one_round(args.broker, args.backend, w, args.n, beam))
            for _ in range(args.rounds) for w in windows]
    table = [summary(runs, w) for w in windows]
    for row in table:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"summary": table, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
