"""Where a timed phase's wall-clock time went, per process, from Linux ``/proc``.

For each named process (all its threads): the CPU it used, and the time it spent
runnable but waiting for a CPU (``/proc/<pid>/task/<tid>/schedstat``: on-CPU ns,
run-queue ns, slices); for the machine, the CPU time nobody used (``/proc/stat``). A
phase where CPUs sat idle while processes waited for one is limited by where the
scheduler put them, not by CPU. ``benchmarks/core.py --sched`` reports it per phase.
Figures are per task and as a share of one core over the phase (1.0: one core's worth).
Elsewhere than Linux, :meth:`Phase.report` returns None.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _threads(pid: int) -> list[Path]:
    try:
        return [p / "schedstat" for p in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return []


def _process(pid: int) -> list[int]:
    total = [0, 0, 0]
    for path in _threads(pid):
        try:
            fields = [int(f) for f in path.read_text().split()]
        except (OSError, ValueError):
            continue  # a thread that ended meanwhile
        total = [a + b for a, b in zip(total, fields, strict=False)]
    return total


def _machine() -> list[int] | None:
    """[idle + iowait ticks, all ticks] since boot, or None off Linux."""
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in line]
    return [ticks[3] + ticks[4], sum(ticks)]


class Phase:
    """Counters for ``pids`` (name -> pid) from construction on; :meth:`report` at the
    phase's end. Off Linux, reports None."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.machine = _machine()
        self.start = {name: _process(pid) for name, pid in self.pids.items()}

    def report(self, tasks: int, seconds: float) -> dict[str, Any] | None:
        """What each process used and waited for per task and in cores; ``idle_cores``:
        the machine's CPU time nobody used, in cores."""
        machine = _machine()
        if self.machine is None or machine is None or tasks <= 0 or seconds <= 0:
            return None
        idle, ticks = (a - b for a, b in zip(machine, self.machine, strict=True))
        cores = os.cpu_count() or 1
        out: dict[str, Any] = {"idle_cores": round(idle / max(ticks, 1) * cores, 3)}
        for name, pid in self.pids.items():
            cpu, wait, slices = (a - b for a, b in
                                 zip(_process(pid), self.start[name], strict=True))
            out[name] = {"cpu_us_per_task": round(cpu / tasks / 1e3, 3),
                         "waiting_us_per_task": round(wait / tasks / 1e3, 3),
                         "cpu_cores": round(cpu / seconds / 1e9, 3),
                         "waiting_cores": round(wait / seconds / 1e9, 3),
                         "tasks_per_slice": round(tasks / max(slices, 1), 1)}
        return out
