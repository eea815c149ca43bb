"""The producer's CPU per awaited call in a fan-in, in instructions, before and after.

    python benchmarks/fanin_cost.py --before /path/to/old/tree --after . [--calls 5000] \
        [--inflight 1000] [--rounds 3] [--broker redis://127.0.0.1:6379/0] [--profile DIR]

What ``benchmarks/core.py --fan-in`` times (callers that each ``await (await
noop.enqueue(i))``, ``--inflight`` of them at a time, while one ``asyncq worker``
process drains), but counted: the producer runs under ``valgrind --tool=callgrind``
(the worker, a separate CLI process of the same tree, does not), once with ``--calls``
calls and once with none; the difference over ``--calls`` is the producer's
instructions per awaited call: enqueue, publish, the wait and the reply it gets. The
count still follows timing (how many replies one read takes, how many calls one
publish carries), so a busy machine moves it by up to ±10 %: the sides take turns,
``--rounds`` times, and their medians are compared.
``--profile DIR`` keeps each side's callgrind output there (``callgrind_annotate``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROGRAM = '''
import asyncio, sys
import bench_tasks as mod

async def main(n: int, inflight: int) -> None:
    async with mod.app:
        for i in range(200):  # the worker is up, connections and the reply channel too
            assert await (await mod.noop.enqueue(i)) == i
        calls = iter(range(n))

        async def caller() -> None:
            for i in calls:
                assert await (await mod.noop.enqueue(i)) == i

        await asyncio.gather(*(caller() for _ in range(min(inflight, max(n, 1)))))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
'''


def _env(tree: Path, broker: str, queue: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(tree), str(HERE)]), "PATH": "/usr/bin:/bin",
            "PYTHONHASHSEED": "0", "ASYNCQ_BENCH_BROKER": broker, "ASYNCQ_BENCH_QUEUE": queue}


def count(tree: Path, calls: int, args: argparse.Namespace, program: Path,
          keep: Path | None) -> int:
    """The producer's instructions for ``calls`` awaited calls, a worker draining."""
    queue = f"fanin-{uuid.uuid4().hex[:8]}"
    env = _env(tree, args.broker, queue)
    worker = subprocess.Popen(
        [sys.executable, "-m", "asyncq", "worker", "bench_tasks:app", "-Q", queue,
         "-c", "100", "-l", "warning"], env=env, cwd=HERE, stderr=args.worker_log)
    try:
        with tempfile.TemporaryDirectory() as out:
            target = keep or Path(out) / "cg.out"
            result = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={target}",
                 sys.executable, str(program), str(calls), str(args.inflight)],
                env=env, capture_output=True, text=True, check=True, timeout=args.timeout)
    finally:
        worker.terminate()
        worker.wait(30)
        subprocess.run([sys.executable, "-c", _DELETE, queue], env=env, check=False)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr}")
    return int(found.group(1))


_DELETE = '''
import asyncio, sys
import bench_tasks as mod

async def main() -> None:
    async with mod.app:
        await mod.app.broker.delete_queue(sys.argv[1])

asyncio.run(main())
'''


def per_call(tree: Path, args: argparse.Namespace, program: Path, name: str) -> float:
    subprocess.run([sys.executable, "-c", "import asyncq.cli, bench_tasks"],  # the .pyc files
                   env=_env(tree, args.broker, "warm"), check=True)
    keep = args.profile / f"{name}.cg.out" if args.profile else None
    none = count(tree, 0, args, program, None)
    some = count(tree, args.calls, args, program, keep)
    calls: int = args.calls
    return (some - none) / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--before", type=Path, help="the tree to compare with (none: --after alone)")
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--inflight", type=int, default=1000)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    p.add_argument("--timeout", type=float, default=900, help="seconds a producer run may take")
    p.add_argument("--rounds", type=int, default=3,
                   help="runs per side, alternated; the medians are compared")
    p.add_argument("--profile", type=Path, help="keep each side's callgrind output here "
                   "(the last round's)")
    args = p.parse_args()
    args.worker_log = subprocess.DEVNULL
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    sides = {"before": args.before, "after": args.after}
    runs: dict[str, list[float]] = {name: [] for name, tree in sides.items() if tree}
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "program.py"
        program.write_text(PROGRAM)
        for _ in range(args.rounds):  # the sides take turns: drift falls on both alike
            for name in runs:
                runs[name].append(per_call(sides[name].resolve(), args, program, name))
                print(f"{name}: {runs[name][-1]:,.0f}", file=sys.stderr)
    print(f"calls {args.calls}, {args.inflight} at a time, median of {args.rounds}")
    print("| per awaited call (instructions) | before | after | after / before |")
    print("|---|---|---|---|")
    before = statistics.median(runs["before"]) if "before" in runs else None
    after = statistics.median(runs["after"])
    ratio = f"{after / before:.3f}" if before else "-"
    print(f"| producer | {before or 0:,.0f} | {after:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
