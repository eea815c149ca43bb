"""Before/after of single phases of core.py, two source trees alternated.

    python benchmarks/ab_phases.py --before /path/to/old/tree --after . [--rounds 8] \\
        [--broker amqp://guest:guest@127.0.0.1:5672/] [--backend redis://127.0.0.1:6379/0] \\
        [--phases enqueue,round_trip,drain,fan_in] [--n 30000] [--round-trips 2000] \\
        [--json out.json]

``ab.py`` runs the whole of ``core.py`` per sample; a phase's figure then moves with the
phases before it (a drain's backlog, the broker's state). Here each sample is one
process of one tree (``PYTHONPATH`` set to it; a worker process inherits it) doing only:

- ``enqueue``: core.py's ``enqueue_batch`` (``--n`` calls through ``app.enqueue_many``)
  and ``enqueue_concurrent`` (``--n`` concurrent ``await noop.enqueue(i)`` under one
  ``gather``, after one call), twice each, medians;
- ``round_trip``: ``--round-trips`` sequential enqueue → awaited result through one
  worker process (``core.round_trip``: p50, p99);
- ``drain``: ``--n`` queued no-op tasks through one worker process (``core.drain``,
  timed from the first ack to the last result), twice, median;
- ``fan_in``: ``--n`` calls, 1,000 at a time, each ``await (await noop.enqueue(i))``
  with one worker process running (``core.fan_in``), twice, median. With ``drain``
  too, each sample also gives fan-in ÷ drain of its own two medians.

The default phases are ``enqueue,round_trip``.

The trees take turns and swap places every round. Prints a table of medians (for
latencies, before ÷ after: above 1 is better, as in ``ab.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


async def _enqueue(core: Any, mod: Any, n: int) -> dict[str, float]:
    """core.py's two enqueue phases, twice each (its one-at-a-time phase sends one call
    first: the queue is declared)."""
    batch, one = [], []
    for _ in range(2):
        gc.collect()
        batch.append((await core.enqueue_batch(mod, n))[0]["per_s"])
        gc.collect()
        one.append((await core.enqueue_concurrent(mod, n))["per_s"])
    return {"enqueue batch /s": statistics.median(batch),
            "enqueue one at a time /s": statistics.median(one)}


async def _drain(core: Any, mod: Any, args: argparse.Namespace) -> dict[str, float]:
    settings = argparse.Namespace(broker=args.broker, backend=args.backend or None,
                                  concurrency=100, observe=False)
    rates = []
    for _ in range(2):
        gc.collect()
        rates.append((await core.drain(mod, settings, args.n))["per_s"])
    return {"drain /s": statistics.median(rates)}


async def _fan_in(core: Any, mod: Any, args: argparse.Namespace, queue: str
                  ) -> dict[str, float]:
    rates = []
    with core.worker(args.broker, queue, args.backend or None, 100) as procs:
        for _ in range(2):
            gc.collect()
            rates.append((await core.fan_in(mod, args.n, 1000, procs))["per_s"])
    return {"fan-in /s": statistics.median(rates)}


async def sample(args: argparse.Namespace) -> dict[str, float]:
    """One sample of this process's tree (the ``--sample`` mode)."""
    import core

    queue = f"bench-ph-{uuid.uuid4().hex[:6]}"
    mod = core._load(args.broker, queue, args.backend or None)
    out: dict[str, float] = {}
    async with mod.app:
        if "enqueue" in args.phases:
            out.update(await _enqueue(core, mod, args.n))
        if "round_trip" in args.phases:
            with core.worker(args.broker, queue, args.backend or None, 100):
                trip = await core.round_trip(mod, args.round_trips)
            out.update({"round trip p50 ms": trip["p50_ms"], "round trip p99 ms": trip["p99_ms"]})
        if "drain" in args.phases:
            out.update(await _drain(core, mod, args))
        if "fan_in" in args.phases:
            out.update(await _fan_in(core, mod, args, queue))
        if "drain" in args.phases and "fan_in" in args.phases:
            out["fan-in / drain"] = out["fan-in /s"] / out["drain /s"]
        await mod.app.broker.delete_queue(queue)
    return out


def _run(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--sample", "--broker", args.broker,
           "--backend", args.backend, "--phases", ",".join(args.phases), "--n", str(args.n),
           "--round-trips", str(args.round_trips)]
    done = subprocess.run(cmd, env=env, cwd=HERE, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for round_no in range(args.rounds):
        order = ("before", "after") if round_no % 2 == 0 else ("after", "before")
        for side in order:
            runs[side].append(_run(getattr(args, side), args))
            print(f"round {round_no + 1}: {side} done", file=sys.stderr, flush=True)
    rows = []
    for figure in runs["before"][0]:
        before = statistics.median(r[figure] for r in runs["before"])
        after = statistics.median(r[figure] for r in runs["after"])
        ratio = before / after if figure.endswith(" ms") else after / before
        rows.append({"figure": figure, "before": before, "after": after, "ratio": ratio,
                     "before_runs": [r[figure] for r in runs["before"]],
                     "after_runs": [r[figure] for r in runs["after"]]})
    return {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--before", type=Path)
    p.add_argument("--after", type=Path)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    p.add_argument("--phases", type=lambda s: s.split(","), default=["enqueue", "round_trip"])
    p.add_argument("--n", type=int, default=30_000)
    p.add_argument("--round-trips", type=int, default=2000)
    p.add_argument("--json", type=Path)
    p.add_argument("--sample", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> None:
    args = parse()
    if args.sample:
        sys.path.insert(0, str(HERE))
        print(json.dumps(asyncio.run(sample(args))))
        return
    if args.before is None or args.after is None:
        raise SystemExit("ab_phases.py: --before and --after are needed")
    result = compare(args)
    print("\n".join(table(result["rows"], args.rounds)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def table(rows: list[dict[str, Any]], rounds: int) -> list[str]:
    lines = [f"| figure | before (median of {rounds}) | after | after vs before |",
             "|---|---|---|---|"]
    lines += [f"| {row['figure']} | {row['before']:,.2f} | {row['after']:,.2f} | "
              f"{row['ratio']:.3f} |" for row in rows]
    return lines


if __name__ == "__main__":
    main()
