"""Worker processes for the driver: start, stop (only the groups we started), RSS."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
#: seconds a worker gets to exit after SIGTERM once the figures are in; then SIGKILL
#: (some workers wait for their blocking reads to time out first)
GRACE = 3.0


class Workers:
    """``count`` copies of one worker command, each in its own process group."""

    def __init__(self, argv: list[str], count: int, env: dict[str, str]) -> None:
        self.logdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        for index in range(count):
            log = (self.logdir / f"worker-{index}.log").open("wb")
            argv_i = [a.replace("{index}", str(index)) for a in argv]
            self.procs.append(subprocess.Popen(
                [sys.executable, *argv_i], cwd=BENCHMARKS, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()

    def check(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}: {self.tail()}")

    def tail(self, chars: int = 600) -> str:
        text = " | ".join(p.read_text(errors="replace") for p in sorted(self.logdir.iterdir()))
        return text[-chars:].replace("\n", " ")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group we created, children included
            proc.wait()
        for log in self.logdir.iterdir():
            log.unlink()
        self.logdir.rmdir()


@contextlib.contextmanager
def workers(argv: list[str], count: int, env: dict[str, str]) -> Iterator[Workers]:
    group = Workers(argv, count, env)
    try:
        yield group
    finally:
        group.stop()


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/<pid>/task/<tid>/children (Linux)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    text = Path(f"/proc/{current}/task/{task}/children").read_text()
                    todo.extend(int(child) for child in text.split())
    return found


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler(threading.Thread):
    """Peak of the summed RSS of the worker processes and their children."""

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.peak, self.samples = 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            total = sum(rss_bytes(p) for root in self.pids for p in tree(root))
            self.peak, self.samples = max(self.peak, total), self.samples + 1


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class CpuSampler(threading.Thread):
    """Machine CPU use and the Redis server's own CPU seconds, every ``interval``.

    ``window(first, last)`` gives the shares between two wall-clock times (the ledger's
    first start and last finish): how busy the machine's cores were and how many cores
    Redis used, to tell "Redis or the CPU is saturated" from "the library is slow".
    """

    def __init__(self, redis_url: str, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        import redis  # every venv that runs the driver has redis-py

        self.client, self.interval = redis.Redis.from_url(redis_url), interval
        self.rows: list[tuple[float, int, int, float]] = []
        self.done = threading.Event()

    def _redis_cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def run(self) -> None:
        while True:
            self.rows.append((time.time(), *_machine_jiffies(), self._redis_cpu()))
            if self.done.wait(self.interval):
                break
        self.client.close()

    def window(self, first: float, last: float) -> dict[str, float] | None:
        inside = [r for r in self.rows if first <= r[0] <= last]
        if len(inside) < 2:
            return None
        (t0, b0, a0, r0), (t1, b1, a1, r1) = inside[0], inside[-1]
        return {"machine_busy": round((b1 - b0) / max(a1 - a0, 1), 3),
                "cores": os.cpu_count() or 1,
                "redis_cores": round((r1 - r0) / max(t1 - t0, 1e-6), 3)}
