"""``asyncq worker -w N``: N worker processes under one supervisor.

The supervisor starts N copies of the same command with ``-w 1``, forwards
SIGTERM/SIGINT to them, and restarts a child that dies while it is not stopping
(a crash or SIGKILL); the child's unacked messages are recovered by the lease.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

__all__ = ["CHILD_ENV", "supervise"]

#: Set in each child: its number (1..N), for its process name in logs.
CHILD_ENV = "ASYNCQ_WORKER_PROCESS"

logger = logging.getLogger("asyncq.supervisor")

RESTART_DELAY = 0.5


def _child_argv(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-w", "--workers"):
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [sys.executable, "-m", "asyncq", *out, "-w", "1"]


def _start(cmd: list[str], index: int) -> subprocess.Popen[bytes]:
    # its own process group: a Ctrl-C at the terminal reaches the supervisor only, which
    # forwards it once (the child would otherwise get it twice and take it as "abort")
    return subprocess.Popen(cmd, env=dict(os.environ, **{CHILD_ENV: str(index + 1)}),
                            process_group=0)


def supervise(processes: int, argv: list[str]) -> int:
    """Run ``processes`` workers until a signal; return the exit code."""
    cmd = _child_argv(argv)
    children = [_start(cmd, index) for index in range(processes)]
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping:
        for index, child in enumerate(children):
            code = child.poll()
            if code is not None and not stopping:
                logger.warning("worker process %d exited with %d; restarting", child.pid, code)
                time.sleep(RESTART_DELAY)
                children[index] = _start(cmd, index)
        time.sleep(0.2)
    codes = [child.wait() for child in children]
    return max((abs(code) for code in codes), default=0) if any(codes) else 0
