"""Start-up and stop time of a CLI worker, on Redis and on RabbitMQ.

    python benchmarks/startstop.py --runs 10 [--tree A --tree B ...] [--json out.json]

Each run spawns ``python -m asyncq worker startstop_app:app -l info`` on an empty queue
of its own, times the first stderr line with "ready: consuming" (start-up), waits
about ``--idle`` seconds, then sends SIGTERM and times the exit (stop). The worker's CPU
(user+system, from ``os.wait4``) is kept too: it moves less with the other load of a
shared machine than wall time.
With several ``--tree``, each tree's worker runs with ``PYTHONPATH`` set to it and the
trees take turns run after run, so drift on the machine falls on all alike. Medians.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BROKERS = {
    "redis": "redis://127.0.0.1:6379/0",
    "amqp": "amqp://guest:guest@127.0.0.1:5672/",
}

APP = '''
import os
from asyncq import App

app = App("startstop", broker=os.environ["T_BROKER"])


@app.task(queue=os.environ["T_QUEUE"])
async def noop() -> None:
    return None
'''


def one_run(tree: Path, broker: str, app_dir: Path, idle: float) -> dict[str, float]:
    queue = f"startstop-{uuid.uuid4().hex[:10]}"
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{app_dir}", T_BROKER=broker,
               T_QUEUE=queue)
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncq", "worker", "startstop_app:app", "-l", "info"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=app_dir)
    assert proc.stderr is not None
    for raw in proc.stderr:
        if b"ready: consuming" in raw:
            break
    else:
        raise RuntimeError(f"worker exited without consuming (status {proc.wait()})")
    time.sleep(idle)  # an idle worker's read is blocked on the server when the signal comes
    ready = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()  # until the worker closes it
    _, status, usage = os.wait4(proc.pid, 0)
    ended = time.perf_counter()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"worker exited with {proc.returncode}")
    _cleanup(broker, queue)
    return {"start_s": ready - began, "stop_s": ended - ready,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def _cleanup(broker: str, queue: str) -> None:
    """Delete what the worker made for its own queue (nothing else)."""
    if broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker)
        keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def summary(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(s[key] for s in samples), 4) for key in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tree", action="append", type=Path, default=None)
    parser.add_argument("--broker", action="append", choices=sorted(BROKERS), default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--idle", type=float, default=1.0,
                        help="Mean seconds between 'ready' and SIGTERM (default 1): each run "
                        "draws from 0.5x to 1.5x of it (the same for every tree), so that the "
                        "signal does not keep to the phase of a periodic wait.")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.tree or [Path(__file__).resolve().parent.parent]]
    brokers = args.broker or ["redis", "amqp"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        app_dir = Path(scratch)
        (app_dir / "startstop_app.py").write_text(APP)
        samples: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(args.runs):
            idle = args.idle * random.uniform(0.5, 1.5)
            for broker in brokers:
                for tree in trees:
                    sample = one_run(tree, BROKERS[broker], app_dir, idle)
                    samples.setdefault((str(tree), broker), []).append(sample)
    for (tree, broker), runs in samples.items():
        results.setdefault(tree, {})[broker] = summary(runs)
        fig = results[tree][broker]
        print(f"{tree:40} {broker:6} start {fig['start_s']:.3f} s  stop {fig['stop_s']:.3f} s"
              f"  worker CPU {fig['cpu_s']:.3f} s  (median of {len(runs)})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
