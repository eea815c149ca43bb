"""Before/after: benchmarks/core.py from two source trees, alternated, medians compared.

    python benchmarks/ab.py --before /path/to/old/tree --after . --pairs 3 \\
        --broker redis://127.0.0.1:6379/0 [--drain 100000 --enqueue 50000] [--json out.json]

Each run is ``core.py`` of that tree with ``PYTHONPATH`` set to the tree (its workers
inherit it), on the same servers, the two trees taking turns so that drift on a
shared machine falls on both alike. ``--before-args`` / ``--after-args`` add options to
one side's ``core.py``: ``--before . --after . --after-args=--observe`` compares one
tree with and without events, heartbeats and metrics. The table gives each figure's
median per side and after / before (for latencies, before / after: above 1 is always
better).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

FIGURES = [  # (name, path in core.py's JSON, higher is better)
    ("drain /s", ("drain", "per_s"), True),
    ("drain backlog /s", ("drain_backlog_first", "per_s"), True),
    ("drain: worker CPU us/task", ("drain", "cpu_us_per_task"), False),
    ("enqueue one at a time /s", ("enqueue_concurrent", "per_s"), True),
    ("enqueue batch /s", ("enqueue_batch", "per_s"), True),
    ("round trip p50 ms", ("round_trip", "p50_ms"), False),
    ("round trip p99 ms", ("round_trip", "p99_ms"), False),
    ("fan-in /s", ("fan_in", "per_s"), True),
    ("fan-in: producer CPU us/task", ("fan_in", "producer_cpu_us"), False),
    ("fan-in / drain", ("fan_in", "vs_drain"), True),
]


def run(tree: Path, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        harness = args.harness or tree
        cmd = [sys.executable, str(harness / "benchmarks" / "core.py"), "--broker", args.broker,
               "--drain", str(args.drain), "--enqueue", str(args.enqueue),
               "--json", out.name]
        if args.backend:
            cmd += ["--backend", args.backend]
        cmd += extra
        env = dict(os.environ, PYTHONPATH=str(tree))
        subprocess.run(cmd, env=env, check=True, cwd=tree, stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())  # type: ignore[no-any-return]


def pick(result: dict[str, Any], path: tuple[str, str]) -> float:
    return float(result.get(path[0], {}).get(path[1], "nan"))  # a figure an older core.py lacks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    p.add_argument("--backend", default=None)
    p.add_argument("--drain", type=int, default=100_000)
    p.add_argument("--enqueue", type=int, default=50_000)
    p.add_argument("--before-args", default="",
                   help="More options for the before side's core.py (e.g. --observe).")
    p.add_argument("--after-args", default="",
                   help="More options for the after side's core.py; with --before and "
                   "--after the same tree, --after-args=--observe measures what observing "
                   "costs.")
    p.add_argument("--harness", type=Path, default=None,
                   help="Run this tree's benchmarks/core.py (and bench_tasks.py) for both "
                   "sides, each side's asyncq on PYTHONPATH; default: each tree its own.")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.harness:
        args.harness = args.harness.resolve()
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for index in range(args.pairs):
        order = ("before", "after") if index % 2 == 0 else ("after", "before")
        for side in order:
            extra = shlex.split(getattr(args, f"{side}_args"))
            runs[side].append(run(getattr(args, side).resolve(), args, extra))
            print(f"pair {index + 1}: {side} done", file=sys.stderr)
    rows = []
    for name, path, higher in FIGURES:
        before = statistics.median(pick(r, path) for r in runs["before"])
        after = statistics.median(pick(r, path) for r in runs["after"])
        ratio = after / before if higher else before / after
        rows.append({"figure": name, "before": before, "after": after, "ratio": ratio,
                     "before_runs": [pick(r, path) for r in runs["before"]],
                     "after_runs": [pick(r, path) for r in runs["after"]]})
    print(f"| figure | before (median of {args.pairs}) | after | after vs before |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['figure']} | {row['before']:,.2f} | {row['after']:,.2f} | "
              f"{row['ratio']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": rows, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
