"""``asyncq worker -w N``: N worker processes under one supervisor.

The supervisor starts N copies of the same command with ``-w 1``, forwards
SIGTERM/SIGINT to them, and restarts a child that exits while it is not stopping:
a crash or SIGKILL (the child's unacked messages are recovered by the lease), a
child recycled by ``--max-tasks-per-child`` / ``--max-memory-per-child``
(:mod:`asyncq.middleware.recycle`), or one ended by the hard-limit guard because a
task blocked its event loop past its hard time limit (:mod:`asyncq.worker.hard_limit`).
Each child gets the guard; the recycling limits when they are given.

While the workers first start, a child that fails before it is ready (it exits 2
having printed its one error line: a bad option, an unreachable broker) is not
restarted, since a restart would fail the same way: the supervisor stops the others and
exits 2. Once a child has been ready, the configuration is known to work: a child that
fails to start later (say the broker is down while it restarts after a crash) is
restarted after a delay that grows to ``MAX_RESTART_DELAY``. Each child says it is ready by
creating the file named in ``ASYNCQ_WORKER_READY``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from asyncq.cli._early import take_early
from asyncq.middleware.recycle import EXIT_RECYCLED, MaxMemory, MaxTasks, Recycle
from asyncq.worker.hard_limit import EXIT_HARD_LIMIT, HardLimitGuard

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["CHILD_ENV", "CHILD_START_PATIENCE", "READY_ENV", "child_exit_code",
           "child_middleware", "mark_ready", "stop_with_parent", "supervise"]

#: Set in each child: its number (1..N), for its process name in logs.
CHILD_ENV = "ASYNCQ_WORKER_PROCESS"
#: Set in each child: a file to create once it consumes.
READY_ENV = "ASYNCQ_WORKER_READY"
#: A child's exit code for an error it printed (the CLI's one-line errors).
ERROR_EXIT = 2

logger = logging.getLogger("asyncq.supervisor")

RESTART_DELAY = 0.5
#: The longest wait before restarting a child that keeps failing to start.
MAX_RESTART_DELAY = 5.0
#: Seconds a child keeps trying a broker it cannot reach at start (a child restarted
#: during a broker outage) before it gives up with its one error line.
CHILD_START_PATIENCE = 15.0
_PR_SET_PDEATHSIG = 1


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


def _start(cmd: list[str], index: int, ready_dir: Path) -> subprocess.Popen[bytes]:
    ready = ready_dir / str(index + 1)
    ready.unlink(missing_ok=True)
    # its own process group: a Ctrl-C at the terminal reaches the supervisor only, which
    # forwards it once (the child would otherwise get it twice and take it as "abort")
    return subprocess.Popen(cmd, env=dict(os.environ, **{CHILD_ENV: str(index + 1),
                                                         READY_ENV: str(ready)}),
                            process_group=0)


def mark_ready() -> None:
    """In a child: tell the supervisor this worker consumes (see the module docstring)."""
    path = os.environ.get(READY_ENV)
    if path:
        with contextlib.suppress(OSError):
            Path(path).touch()


def supervise(processes: int, argv: list[str]) -> int:
    """Run ``processes`` workers until a signal; return the exit code."""
    cmd = _child_argv(argv)
    children: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        forward = signal.SIGTERM if signum == signal.SIGHUP else signum  # terminal closed
        for child in children:
            if child.poll() is None:
                child.send_signal(forward)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # before any child runs
        signal.signal(signum, on_signal)
    if take_early():  # a SIGTERM since the command started: start no child
        return 0
    with tempfile.TemporaryDirectory(prefix="asyncq-ready-") as ready_dir:
        for index in range(processes):  # each one listed at once: a signal reaches it
            children.append(_start(cmd, index, Path(ready_dir)))
        if stopping:  # a signal came while they started: those started after it get it too
            on_signal(stopping[0], None)
        restarts = _Restarts(Path(ready_dir))
        while not stopping:
            if _restart_dead(cmd, children, stopping, restarts):
                on_signal(signal.SIGTERM, None)
                _wait_all(children)
                return ERROR_EXIT
            time.sleep(0.2)
        return _wait_all(children, signalled=True)


class _Restarts:
    """Whether any child was ever ready, and the delay before the next restart."""

    def __init__(self, ready_dir: Path) -> None:
        self.ready_dir = ready_dir
        self.ever_ready = False
        self.delay = RESTART_DELAY

    def ready(self, index: int) -> bool:
        found = (self.ready_dir / str(index + 1)).exists()
        self.ever_ready = self.ever_ready or found
        return found

    def wait(self, started: bool) -> None:
        """Sleep before a restart: longer each time children fail to start."""
        self.delay = RESTART_DELAY if started else min(self.delay * 2, MAX_RESTART_DELAY)
        time.sleep(self.delay)


def _restart_dead(cmd: list[str], children: list[subprocess.Popen[bytes]],
                  stopping: list[int], restarts: _Restarts) -> bool:
    """Restart ended children; True when one failed before any child was ever ready."""
    for index, child in enumerate(children):
        code = child.poll()
        if code is None or stopping:
            continue
        started = restarts.ready(index)
        if code == ERROR_EXIT and not started and not restarts.ever_ready:
            logger.error("worker process %d failed to start; stopping", child.pid)
            return True
        _log_exit(child.pid, code)
        if code != EXIT_RECYCLED:
            restarts.wait(started)
        children[index] = _start(cmd, index, restarts.ready_dir)
    return False


def _wait_all(children: list[subprocess.Popen[bytes]], *, signalled: bool = False) -> int:
    """The supervisor's exit code once every child ended. ``signalled``: the children
    were sent SIGTERM or SIGINT to stop, and one that died of it before it could
    install its handlers (a child still starting) stopped as asked too."""
    asked = {EXIT_RECYCLED, -signal.SIGTERM, -signal.SIGINT} if signalled else {EXIT_RECYCLED}
    codes = [child.wait() for child in children]
    codes = [0 if code in asked else code for code in codes]  # stopped as asked
    return max((abs(code) for code in codes), default=0) if any(codes) else 0


def stop_with_parent() -> None:
    """In a child: get SIGTERM when the supervisor dies, even by SIGKILL (Linux only;
    elsewhere a child outlives a killed supervisor)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError) as exc:
        logger.debug("cannot ask to stop with the supervisor: %s", exc)
        return
    if os.getppid() == 1:  # the supervisor died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def _log_exit(pid: int, code: int) -> None:
    if code == EXIT_RECYCLED:
        logger.info("worker process %d reached its per-child limit; starting a fresh one", pid)
    elif code == EXIT_HARD_LIMIT:
        logger.warning("worker process %d was stopped: a task blocked it past its hard time "
                       "limit; starting a fresh one", pid)
    else:
        logger.warning("worker process %d exited with %d; restarting", pid, code)


def child_middleware(app: App, max_tasks: int | None, max_memory: float | None
                     ) -> list[Recycle]:
    """Add the supervised child's middleware to ``app`` (before its Worker is built):
    the hard-limit guard, and the recycling limits given. Returns the latter."""
    recycle: list[Recycle] = []
    if max_tasks:
        recycle.append(MaxTasks(max_tasks))
    if max_memory:
        recycle.append(MaxMemory(max_memory))
    for middleware in (*recycle, HardLimitGuard()):
        app.add_middleware(middleware)
    return recycle


def child_exit_code(recycle: list[Recycle]) -> int:
    """:data:`EXIT_RECYCLED` when a recycling limit stopped the worker, else 0."""
    return EXIT_RECYCLED if any(r.reached for r in recycle) else 0
