"""What one observed run costs, in instructions: the outcome row and its batch.

    python benchmarks/rows.py --before /path/to/old/tree --after . [--rows 20000]

Runs, under ``valgrind --tool=callgrind`` (a count that load does not move), a program
that makes N outcome rows with the worker's own code (``Executor._succeeded`` on a
``Job`` of the worker's own slotted classes, ``Message``, ``Delivery`` and ``Pipeline``,
the path of a task that succeeded), takes them in batches of
``--batch`` rows as ``asyncq worker --events --metrics-port`` does (``Observed``: the
rows go to the metrics and the event buffer), folds them into the metrics and packs
them as an event batch (msgpack); a run with 0 rows is subtracted. What is left is the
instructions per observed run spent in asyncq's row code, the fold and the packing,
without the event loop, the broker or the noise of timers. Each step is also counted
alone (``--step make|fold|pack``) so a change shows where it acts, and ``--step off``
counts the same successful run with no observer: the row's own cost is make minus off.
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
import collections, sys, time
from types import SimpleNamespace
from asyncq.brokers import Delivery
from asyncq.events import ROWS_PER_ENTRY, pack_events
from asyncq.events.monitor import Events
from asyncq.events.observed import Observed
from asyncq.message import Message
from asyncq.middleware import Job, Pipeline
from asyncq.middleware.prometheus import Metrics
from asyncq.worker.execute import Executor
try:  # a batch cut as the buses cut it (counting success columns by their rows)
    from asyncq.events import chunks
except ImportError:  # a tree from before success columns
    def chunks(rows):
        return [rows[i:i + ROWS_PER_ENTRY] for i in range(0, len(rows), ROWS_PER_ENTRY)]

n, batch, step, noop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
events, metrics = Events(2.0), Metrics()
observer = Observed(events, metrics)
sink = observer.outcomes
task = SimpleNamespace(config=SimpleNamespace(ignore_result=True))
message = Message("0123456789abcdef0123456789abcdef", "bench.noop", [1], {}, {},
                  {} if noop else {"asyncq-enqueued-at": time.time()}, 1)
# the worker's own classes (slotted: their attributes cost what they cost in a worker)
job = Job(None, message, task, Delivery(b"", "bench"),
          Pipeline([] if step == "off" else [observer], task))
worker = Executor.__new__(Executor)
worker.name = "12345@host"
succeeded = Executor._succeeded
started = time.perf_counter()
clock = time.perf_counter
for start in range(0, n, batch):
    for _ in range(min(batch, n - start)):
        succeeded(worker, job, None, clock() if noop else started)
    if step in ("make", "off"):
        sink.clear()
        continue
    rows = observer._for_events("12345@host")
    if step != "pack":
        metrics.stats.fold()
    else:
        metrics.stats.pending.clear()
    if step != "fold":  # one stream entry (Redis) or message (RabbitMQ) per chunk
        for chunk in chunks(rows):
            pack_events(chunk)
'''


def count(tree: Path, rows: int, batch: int, step: str, program: Path, noop: bool) -> int:
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
             sys.executable, str(program), str(rows), str(batch), step, str(int(noop))],
            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
            capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr}")
    return int(found.group(1))


def per_row(tree: Path, rows: int, batch: int, step: str, program: Path, noop: bool) -> float:
    subprocess.run([sys.executable, str(program), "10", str(batch), step, "0"],  # the .pyc
                   env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=True)
    return (count(tree, rows, batch, step, program, noop)
            - count(tree, 0, batch, step, program, noop)) / rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--step", default="all", choices=["all", "make", "fold", "pack", "off"],
                   help="make: the rows only; fold: make and fold; pack: make and pack; "
                   "off: the same run with no observer (subtract it from the others)")
    p.add_argument("--noop", action="store_true",
                   help="rows as a drain of no-op tasks from a producer without metrics "
                   "gives them: run times of microseconds, no enqueue stamp (by default "
                   "each row's run time grows with the program's, across the buckets, and "
                   "it has an enqueue stamp, so the fold also counts queue waits)")
    args = p.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "program.py"
        program.write_text(PROGRAM)
        before = per_row(args.before.resolve(), args.rows, args.batch, args.step, program,
                         args.noop)
        after = per_row(args.after.resolve(), args.rows, args.batch, args.step, program,
                        args.noop)
    print(f"| per row, step {args.step} (instructions) | before | after | after / before |")
    print("|---|---|---|---|")
    print(f"| {args.rows} rows, batches of {args.batch} | {before:,.0f} | {after:,.0f} | "
          f"{after / before:.3f} |")


if __name__ == "__main__":
    main()
