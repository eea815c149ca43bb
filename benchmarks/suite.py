"""asyncq side by side with arq, SAQ, streaq, taskiq and Celery, on the local servers.

    python benchmarks/suite.py [--quick] [--only asyncq,arq] [--steps drain,fan_in]
                               [--json PATH] [--chart PNG]

Builds the peers' venvs (benchmarks/.venvs/, pinned in peers/requirements-*.txt) when
missing or stale, then runs every workload for every library, each in its own
subprocess (``peers/driver.py``) with real worker processes and a fresh key/queue
prefix that is deleted afterwards.  A library that fails is recorded (the error string
in its row) and the run goes on; the exit status is 1 when any row has an error.
See benchmarks/README.md for the workloads and the latest table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import report, venvs  # noqa: E402

MACHINE = "2-core shared machine; compare ratios within one run"


@dataclass(frozen=True)
class Row:
    name: str
    module: str
    broker: str  # "redis" or "amqp"
    venv: str | None  # None: the project's own interpreter (sys.executable)


ROWS = [
    Row("asyncq", "peers.asyncq_bench", "redis", None),
    Row("arq", "peers.arq_bench", "redis", "arq"),
    Row("saq", "peers.saq_bench", "redis", "peers"),
    Row("streaq", "peers.streaq_bench", "redis", "peers"),
    Row("taskiq-redis", "peers.taskiq_bench", "redis", "peers"),
    Row("celery", "peers.celery_bench", "redis", "peers"),
    Row("asyncq-amqp", "peers.asyncq_bench", "amqp", None),
    Row("taskiq-aio-pika", "peers.taskiq_bench", "amqp", "peers"),
    Row("celery-amqp", "peers.celery_bench", "amqp", "peers"),
]


def steps(quick: bool) -> dict[str, list[str]]:
    """Workload name -> driver arguments (W1 … W6 and memory; scale_1 is W2 itself)."""
    n = 200 if quick else 20_000
    out = {
        "enqueue": ["enqueue", "--n", str(n)],
        "drain": ["drain", "--n", str(n), "--concurrency", "100"],
        "round_trip": ["round_trip", "--n", "30" if quick else "1000"],
        "sleep": ["drain", "--task", "sleep", "--n", "200" if quick else "2000",
                  "--concurrency", "200"],
    }
    for procs in (2,) if quick else (2, 4):
        out[f"scale_{procs}"] = ["drain", "--n", str(n), "--procs", str(procs)]
    out["memory"] = ["drain", "--n", "2000" if quick else "100000", "--rss"]
    out["fan_in"] = ["fan_in", "--n", str(n), "--inflight", "100" if quick else "1000"]
    return out


def row_env(row: Row, args: argparse.Namespace, step: str) -> dict[str, str]:
    prefix = f"bench-{row.name}-{step.replace('_', '')}-{uuid.uuid4().hex[:6]}"
    return dict(os.environ, BENCH_PREFIX=prefix, BENCH_BROKER=row.broker,
                BENCH_REDIS_URL=args.redis_url, BENCH_AMQP_URL=args.amqp_url,
                # this tree's asyncq, not whichever the interpreter has installed
                PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))


def run_step(python: Path, row: Row, step: str, argv: list[str],
             args: argparse.Namespace) -> dict[str, Any]:
    timeout = 150 if args.quick else 1500
    cmd = [str(python), "-m", "peers.driver", row.module, *argv,
           "--timeout", str(timeout - 30)]
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=HERE, env=row_env(row, args, step), capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {failure(done.stderr)}"}
    return dict(json.loads(lines[-1]), elapsed_s=round(time.monotonic() - started, 1))


def failure(stderr: str) -> str:
    """The exception line of a traceback, with the innermost frame that raised it."""
    lines = [line.strip() for line in stderr.strip().splitlines()] or ["no output"]
    frames = [line for line in lines if line.startswith("File ")]
    where = f" (at {frames[-1][5:]})" if frames else ""
    return f"{lines[-1][:400]}{where[:300]}"


def interpreters(rows: list[Row]) -> dict[str, Path | str]:
    """Row name -> its Python, or the error string when its venv cannot be built."""
    built: dict[str, Path | str] = {}
    out: dict[str, Path | str] = {}
    for row in rows:
        if row.venv is None:
            out[row.name] = Path(sys.executable)
            continue
        if row.venv not in built:
            try:
                built[row.venv] = venvs.ensure(row.venv)
            except (venvs.VenvError, OSError, subprocess.TimeoutExpired) as exc:
                built[row.venv] = f"venv {row.venv}: {exc}"
        out[row.name] = built[row.venv]
    return out


def run_all(rows: list[Row], args: argparse.Namespace) -> dict[str, Any]:
    """Workload by workload, every row (``--parallel`` rows at a time)."""
    results: dict[str, Any] = {r.name: report.empty_row(r.broker) for r in rows}
    pythons = interpreters(rows)

    def one(row: Row, step: str, argv: list[str]) -> dict[str, Any]:
        python = pythons[row.name]
        if isinstance(python, str):
            return {"error": python}
        return run_step(python, row, step, argv, args)

    chosen = steps(args.quick)
    if args.steps:
        chosen = {name: argv for name, argv in chosen.items() if name in args.steps}
    with ThreadPoolExecutor(args.parallel) as pool:
        for step, argv in chosen.items():
            outs = pool.map(lambda row, s=step, a=argv: one(row, s, a), rows)
            for row, out in zip(rows, outs, strict=True):
                report.record(results[row.name], step, out)
                report.say_step(row.name, step, out)
    return results


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke mode: small N (CI)")
    p.add_argument("--only", help="comma-separated rows, e.g. asyncq,arq,asyncq-amqp")
    p.add_argument("--steps", type=lambda text: set(text.split(",")),
                   help="only these workloads, e.g. drain,fan_in (no chart unless --chart)")
    p.add_argument("--json", type=Path, help="default: results/suite.json (suite-quick.json)")
    p.add_argument("--chart", type=Path, help="PNG chart (default docs/benchmarks.png, full)")
    p.add_argument("--parallel", type=int, help="rows run at once (default 1; --quick: 3)")
    p.add_argument("--redis-url", default=os.environ.get(
        "ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--amqp-url", default=os.environ.get(
        "ASYNCQ_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = p.parse_args()
    name = "suite-quick.json" if args.quick else "suite.json"
    args.json = args.json or HERE / "results" / name
    args.parallel = args.parallel or (3 if args.quick else 1)
    if args.chart is None and not args.quick and not args.steps:
        args.chart = HERE.parent / "docs" / "benchmarks.png"
    return args


def main() -> int:
    args = parse()
    wanted = set(args.only.split(",")) if args.only else {r.name for r in ROWS}
    unknown = wanted - {r.name for r in ROWS}
    if unknown:
        sys.exit(f"suite: unknown rows {sorted(unknown)}; known: {[r.name for r in ROWS]}")
    started = dt.datetime.now(dt.UTC)
    rows = run_all([r for r in ROWS if r.name in wanted], args)
    doc = {"suite": "asyncq vs peers", "mode": "quick" if args.quick else "full",
           "started": started.isoformat(timespec="seconds"), "machine": MACHINE,
           "python": platform.python_version(), "rows": rows, "ratios": report.ratios(rows)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(report.markdown(doc))
    errors = report.errors(doc)
    if args.chart:
        python = interpreters([ROWS[2]])[ROWS[2].name]
        errors += report.chart(doc, args.json, args.chart, python if isinstance(python, Path)
                               else None)
    for line in errors:
        print(f"ERROR {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
