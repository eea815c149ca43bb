"""CPU work per task, in instructions, before and after: repeatable on a shared machine.

    python benchmarks/instructions.py --before /path/to/old/tree --after . [--tasks 20000] \
        [--broker redis://127.0.0.1:6379/0] [--backend redis://127.0.0.1:6379/0]

Wall-clock figures on a 2-core machine shared with servers and other work drift by tens
of percent; ``valgrind --tool=callgrind`` counts the instructions a process executes,
which is the same from run to run whatever else the machine does. Each tree runs
(``PYTHONPATH`` = the tree) a producer that enqueues N no-op tasks with
``app.enqueue_many``, with and without an in-process worker draining them; subtracting
a run with 0 tasks gives the producer's and the worker's instructions per task. The
server's own work is not counted (it is another process): with ``--broker redis://...``
what is measured is asyncq's code and the client library's (redis-py, hiredis) on
both sides of the seam; with the default ``memory://``, asyncq's code and the memory
broker's.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROGRAM = '''
import asyncio, os, sys, uuid, asyncq
app = asyncq.App("cg", broker=os.environ["CG_BROKER"],
                 backend=os.environ.get("CG_BACKEND") or None,
                 default_queue="cg-" + uuid.uuid4().hex[:8])

def observe() -> None:  # what `asyncq worker --events --metrics-port` adds
    from asyncq.events.monitor import Events
    from asyncq.events.observed import observed
    from asyncq.middleware.prometheus import Metrics
    app.add_middleware(observed(Events(2.0), Metrics()))

if os.environ.get("CG_OBSERVE") == "1":  # the producer too: it stamps asyncq-enqueued-at
    observe()

@app.task
async def noop(i: int) -> int:
    return i

async def main(n: int, drain: bool) -> None:
    async with app:
        await app.enqueue_many([noop.s(i) for i in range(n)])
        if drain:
            if os.environ.get("CG_OBSERVE") == "2":  # the worker only (core.py --observe)
                observe()
            async with asyncq.Worker(app, concurrency=100, loop_lag_threshold=None) as w:
                await w.join(timeout=3600)
        await app.broker.delete_queue(app.default_queue)

asyncio.run(main(int(sys.argv[1]), sys.argv[2] == "1"))
'''


#: the result backend URL of every run ("": the broker's default), set by main()
BACKEND = [""]


def count(tree: Path, tasks: int, drain: bool, program: Path, broker: str,
          observe: str = "0") -> int:
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
             sys.executable, str(program), str(tasks), "1" if drain else "0"],
            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "CG_BROKER": broker,
                 "PYTHONHASHSEED": "0", "CG_BACKEND": BACKEND[0],
                 "CG_OBSERVE": observe},
            capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr}")
    return int(found.group(1))


def per_task(tree: Path, tasks: int, program: Path, broker: str,
             observe: str = "0") -> dict[str, float]:
    subprocess.run([sys.executable, str(program), "10", "1"], check=True,  # writes the .pyc
                   env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "CG_BROKER": broker,
                        "CG_OBSERVE": observe, "CG_BACKEND": BACKEND[0]})
    base = count(tree, 0, False, program, broker, observe)
    produced = count(tree, tasks, False, program, broker, observe)
    idle_worker = count(tree, 0, True, program, broker, observe)
    drained = count(tree, tasks, True, program, broker, observe)
    return {"enqueue": (produced - base) / tasks,
            "worker": (drained - idle_worker - (produced - base)) / tasks}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--broker", default="memory://cg")
    p.add_argument("--backend", default="",
                   help="result backend URL (default: the broker's own; on RabbitMQ, RPC)")
    p.add_argument("--before-observe", action="store_true",
                   help="The before side's worker with events, heartbeats and metrics.")
    p.add_argument("--after-observe", action="store_true",
                   help="The after side's worker with events, heartbeats and metrics "
                   "(--before . --after . --after-observe: what observing costs).")
    p.add_argument("--worker-only", action="store_true",
                   help="With --*-observe: the middleware on the worker only, as in core.py "
                   "--observe (the producer does not stamp asyncq-enqueued-at, so the worker "
                   "decodes no such header and folds no queue wait).")
    args = p.parse_args()
    side = "2" if args.worker_only else "1"
    BACKEND[0] = args.backend
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "program.py"
        program.write_text(PROGRAM)
        before = per_task(args.before.resolve(), args.tasks, program, args.broker,
                          side if args.before_observe else "0")
        after = per_task(args.after.resolve(), args.tasks, program, args.broker,
                         side if args.after_observe else "0")
    print("| per task (instructions) | before | after | after / before |")
    print("|---|---|---|---|")
    for name in ("enqueue", "worker"):
        print(f"| {name} | {before[name]:,.0f} | {after[name]:,.0f} | "
              f"{after[name] / before[name]:.3f} |")


if __name__ == "__main__":
    main()
