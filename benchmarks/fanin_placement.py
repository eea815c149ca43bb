"""Fan-in ÷ drain with the producer placed by the scheduler or on a core of its own.

    python benchmarks/fanin_placement.py [--rounds 7] [--drain 50000] [--fan-in 20000] \\
        [--broker redis://127.0.0.1:6379/0] [--broker-pid PID] [--no-pin-broker] \\
        [--json out.json]

Each sample is one ``core.py`` run (its drain, then its fan-in with one worker process,
timed the same way) under one of four placements, taking turns, the order reversed
every other round:

- ``asyncio`` and ``uvloop``: the producer on asyncio's loop or on uvloop, all
  processes where Linux puts them;
- ``pinned asyncio`` and ``pinned uvloop``: the same with ``core.py --pin``: the
  producer (a web app) on CPU 0, the worker and the broker's process on the other CPUs.

Every run has ``--sched``: each process's CPU per task, its time waiting for a CPU,
and the machine's idle cores during the fan-in. On a 2-core machine the drain is a
ping-pong between the worker and Redis (about one core busy); the fan-in adds the
producer, three busy processes on two cores, and where the scheduler puts them moves
the fan-in far more than the code does. Prints a table of medians and writes every run.

The broker's process is the local Redis named by ``INFO server`` (``--broker-pid`` to
name another); without one this user may move, the pinned runs pin the producer and the
worker alone, and the broker's CPU is not counted. ``--no-pin-broker`` leaves the
broker where it is but counts it (the smoke test's way with a shared Redis). Each run
records the CPUs the producer and the worker were allowed (``cpus``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

PLACEMENTS: dict[str, list[str]] = {
    "asyncio": [], "uvloop": ["--uvloop"],
    "pinned asyncio": ["--pin"], "pinned uvloop": ["--uvloop", "--pin"],
}
PROCESSES = ("producer", "worker", "broker")


def local_redis_pid(url: str) -> int | None:
    """The pid of the Redis at ``url`` when it runs on this machine and this user may
    move it to other CPUs (the pinned runs do), else None."""
    import redis

    try:
        pid = int(redis.Redis.from_url(url).info("server")["process_id"])
        if "redis" not in Path(f"/proc/{pid}/comm").read_text():
            return None
        os.sched_setaffinity(pid, os.sched_getaffinity(pid))  # (changes nothing)
    except Exception:  # not reachable, not Linux, not ours to move, or not on this machine
        return None
    return pid


def run_once(args: argparse.Namespace, placement: str, out: Path) -> dict[str, Any]:
    """One core.py run under ``placement``: its fan-in, drain and where the time went."""
    cmd = [sys.executable, str(HERE / "core.py"), "--broker", args.broker,
           "--drain", str(args.drain), "--enqueue", str(args.enqueue),
           "--fan-in", str(args.fan_in), "--round-trip", str(args.round_trip),
           "--sched", *PLACEMENTS[placement], "--json", str(out)]
    if args.broker_pid is not None:
        cmd += ["--broker-pid", str(args.broker_pid)]
        if "--pin" in cmd and args.pin_broker:
            cmd += ["--pin-pid", str(args.broker_pid)]
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    if done.returncode:
        raise SystemExit(f"core.py ({placement}) failed:\n{done.stderr[-2000:]}")
    figures = json.loads(out.read_text())
    fan_in, sched = figures["fan_in"], figures["fan_in"]["sched"]
    return {
        "fan_in": fan_in["per_s"], "drain": figures["drain"]["per_s"],
        "vs_drain": fan_in["vs_drain"], "idle_cores": sched["idle_cores"],
        "waiting_cores": sum(sched[p]["waiting_cores"] for p in PROCESSES if p in sched),
        "cpu_us": {p: sched[p]["cpu_us_per_task"] for p in PROCESSES if p in sched},
        "cpus": fan_in.get("cpus"),
    }


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Medians per placement, with the range of fan-in ÷ drain."""
    out: dict[str, dict[str, Any]] = {}
    for placement, rows in runs.items():
        ratios = [row["vs_drain"] for row in rows]
        out[placement] = {
            "runs": len(rows), "vs_drain": statistics.median(ratios),
            "vs_drain_min": min(ratios), "vs_drain_max": max(ratios),
            **{key: statistics.median(row[key] for row in rows)
               for key in ("fan_in", "drain", "idle_cores", "waiting_cores")},
            "cpu_us": {p: statistics.median(row["cpu_us"][p] for row in rows)
                       for p in rows[0]["cpu_us"]},
        }
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| placement | runs | drain /s | fan-in /s | fan-in ÷ drain (range) | fan-in CPU "
             "µs per call: producer / worker / broker | idle cores | cores waiting for a CPU |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        cpu = " / ".join(f"{s['cpu_us'][p]:.2f}" for p in PROCESSES if p in s["cpu_us"])
        lines.append(f"| {name} | {s['runs']} | {s['drain']:,.0f} | {s['fan_in']:,.0f} | "
                     f"{s['vs_drain']:.3f} ({s['vs_drain_min']:.3f}-{s['vs_drain_max']:.3f}) | "
                     f"{cpu} | {s['idle_cores']:.2f} | {s['waiting_cores']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    args = parse()
    if args.broker_pid is None:
        args.broker_pid = local_redis_pid(args.broker)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in PLACEMENTS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = list(PLACEMENTS) if i % 2 == 0 else list(reversed(PLACEMENTS))
            for placement in order:
                row = run_once(args, placement, Path(tmp) / "core.json")
                runs[placement].append(row)
                print(f"round {i + 1} {placement}: fan-in {row['fan_in']:,.0f}/s, drain "
                      f"{row['drain']:,.0f}/s, ratio {row['vs_drain']:.3f}", flush=True)
    summary = summarize(runs)
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps(
            {"broker": args.broker.split("@")[-1],
             "broker_pid_counted": args.broker_pid is not None,
             "sizes": {"drain": args.drain, "enqueue": args.enqueue, "fan_in": args.fan_in},
             "summary": summary, "runs": runs}, indent=1))
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    p.add_argument("--broker-pid", type=int, default=None,
                   help="the broker's process (default: the local Redis, from INFO server)")
    p.add_argument("--no-pin-broker", dest="pin_broker", action="store_false",
                   help="pinned runs leave the broker's process where it is (it is counted)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--drain", type=int, default=50000)
    p.add_argument("--enqueue", type=int, default=20000)
    p.add_argument("--fan-in", type=int, default=20000)
    p.add_argument("--round-trip", type=int, default=1000)
    p.add_argument("--json", type=Path)
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(main())
