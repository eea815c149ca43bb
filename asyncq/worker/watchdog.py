"""Loop-lag watchdog: notices when a task blocks the event loop, and names it.

A blocked loop stops everything in the worker, lease renewal included (so peers may
recover its messages and run them twice). A heartbeat on the loop stamps the time;
a daemon thread checks the stamp and, when it is late by more than ``threshold``,
reads the loop thread's stack to find the registered task function it is inside.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Mapping
from types import CodeType, FrameType

__all__ = ["LoopWatchdog"]

logger = logging.getLogger("asyncq.worker")


class LoopWatchdog:
    def __init__(self, codes: Mapping[CodeType, str], *, threshold: float = 1.0,
                 interval: float = 0.1) -> None:
        self._codes = dict(codes)
        self.threshold = threshold
        self._interval = interval
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = threading.get_ident()
        self._handle: asyncio.TimerHandle | None = None
        self.blocks = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_thread = threading.get_ident()
        self._beat(loop)
        self._thread = threading.Thread(target=self._watch, name="asyncq-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        self._last = time.monotonic()
        if not self._stop.is_set():
            self._handle = loop.call_later(self._interval, self._beat, loop)

    def _watch(self) -> None:
        reported = 0.0
        while not self._stop.wait(self._interval):
            lag = time.monotonic() - self._last
            if lag > self.threshold and reported == 0.0:
                reported = lag
                self.blocks += 1
                logger.warning("event loop blocked for %.1fs %s; leases are not renewed "
                               "while it is blocked", lag, self._where())
            elif lag <= self.threshold and reported:
                reported = 0.0
                logger.warning("event loop unblocked")

    def _where(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        innermost = frame
        while frame is not None:
            name = self._codes.get(frame.f_code)
            if name is not None:
                return f"by task {name} ({_place(innermost)})"
            frame = frame.f_back
        return f"outside any task ({_place(innermost)})" if innermost else ""


def _place(frame: FrameType | None) -> str:
    if frame is None:
        return "unknown place"
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
