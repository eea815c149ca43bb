"""``asyncq worker --reload``: restart the worker when the app's code changes (development).

The reloader runs the same command without ``--reload`` in a child process and watches
the directory of the app's module for changed ``*.py`` files (with watchfiles). On a
change it sends the child SIGTERM: the worker stops fetching, lets running tasks finish
(``--shutdown-timeout``) and hands the messages it holds back to the broker. Then it
starts a new child, which imports the new code. SIGTERM, SIGINT and SIGHUP to the
reloader stop the child the same way; the child has its own process group, so a Ctrl-C
at the terminal reaches it once, through the reloader (a second signal would abort).
On Linux the child also gets SIGTERM when the reloader dies, even by SIGKILL.

A child that exits on its own (an import error after an edit, say) is started again on
the next change.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from asyncq.cli._common import fail
from asyncq.cli._early import take_early

__all__ = ["RELOAD_CHILD_ENV", "reload_worker", "watched_directory"]

logger = logging.getLogger("asyncq.reload")

#: Set in the worker a reloader starts (which then stops with its parent).
RELOAD_CHILD_ENV = "ASYNCQ_RELOAD_CHILD"

#: Seconds a child gets beyond its shutdown timeout before it is killed.
KILL_MARGIN = 10.0


def watched_directory(app_path: str) -> Path:
    """The directory of the module in ``module:attr`` (already imported by the caller)."""
    module_name = app_path.partition(":")[0]
    module = sys.modules.get(module_name)
    origin = getattr(module, "__file__", None)
    if origin is None:
        spec = importlib.util.find_spec(module_name)
        origin = spec.origin if spec is not None else None
    if origin is None:
        raise fail(f"--reload: cannot find the file of module {module_name!r}")
    return Path(origin).resolve().parent


def _child_argv(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "asyncq", *(arg for arg in argv if arg != "--reload")]


def _names(changes: Iterable[tuple[Any, str]], root: Path) -> str:
    paths = sorted({Path(path) for _, path in changes})
    shown = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths[:3]]
    return ", ".join(shown) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


class _Child:
    """The worker process of the moment."""

    def __init__(self, cmd: list[str], grace: float) -> None:
        self.cmd = cmd
        self.grace = grace
        self.proc = self._start()
        self.reported = False

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd, process_group=0,
                                env=dict(os.environ, **{RELOAD_CHILD_ENV: "1"}))

    def stop(self) -> int:
        """SIGTERM, wait for the drain, SIGKILL if it takes too long; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(self.grace + KILL_MARGIN)
            except subprocess.TimeoutExpired:
                logger.warning("worker %d did not stop in time; killing it", self.proc.pid)
                self.proc.kill()
        return self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.proc = self._start()
        self.reported = False

    def check(self) -> None:
        code = self.proc.poll()
        if code is not None and not self.reported:
            logger.warning("worker exited with %d; it starts again on the next change", code)
            self.reported = True


def reload_worker(app_path: str, argv: list[str], shutdown_timeout: float) -> int:
    """Run the worker command in ``argv`` (without ``--reload``) until a signal."""
    try:
        import watchfiles
    except ImportError:
        raise fail("--reload needs watchfiles: pip install 'asyncq[reload]'") from None
    root = watched_directory(app_path)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # we say what changed
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    if take_early():  # a SIGTERM since the command started
        stop.set()
    logger.info("watching %s/**/*.py; the worker restarts when one changes", root)
    child = _Child(_child_argv(argv), shutdown_timeout)
    for changes in watchfiles.watch(root, watch_filter=watchfiles.PythonFilter(),
                                    stop_event=stop, yield_on_timeout=True, rust_timeout=500,
                                    raise_interrupt=False):
        if stop.is_set():
            break
        if changes:
            logger.info("%s changed; restarting the worker", _names(changes, root))
            child.restart()
        else:
            child.check()
    return abs(child.stop())  # a child ended by a signal (-N) exits the reloader with N
