"""``asyncq worker``'s event loop part: signals, the "ready" line, startup failures.

Signals always work:

- while the worker is still connecting, SIGTERM or SIGINT cancels the connect and the
  process exits (there is nothing to finish);
- once it consumes, the first signal lets running tasks finish (``shutdown_timeout``),
  the second aborts them (their messages go back to the broker);
- after the second signal, or once the worker has stopped, the default handlers are back:
  one more signal ends the process at once, whatever it is waiting for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from asyncq.beat import Beat
from asyncq.cli.supervise import mark_ready
from asyncq.worker import Worker

__all__ = ["serve"]

logger = logging.getLogger("asyncq.worker")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Signals:
    """What each SIGTERM/SIGINT does to one running worker."""

    def __init__(self, instance: Worker, run: asyncio.Future[None],
                 scheduler: Beat | None) -> None:
        self.instance = instance
        self.run = run
        self.scheduler = scheduler
        self.count = 0
        self.cancelled = False

    def __call__(self, signum: int) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.scheduler is not None:
            self.scheduler.stop()
        if not self.instance.started.is_set():
            logger.warning("%s received while starting: stopping", name)
            self.cancelled = True
            self.run.cancel()
            _default_handlers()
        elif self.count == 1:
            logger.warning("%s received: finishing running tasks (again to abort them)", name)
            self.instance.stop()
        else:
            logger.warning("%s received again: aborting running tasks (again to exit now)",
                           name)
            self.instance.abort()
            _default_handlers()


def _default_handlers() -> None:
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.remove_signal_handler(signum)
        signal.signal(signum, signal.SIG_DFL)


async def _announce(instance: Worker) -> None:
    await instance.started.wait()
    logger.info("ready: consuming %s", ", ".join(instance.queues))
    mark_ready()


async def _run(instance: Worker, scheduler: Beat | None) -> None:
    """The worker, and the embedded scheduler (``--beat``) that stops with it."""
    if scheduler is None:
        await instance.run()
        return
    beating = asyncio.ensure_future(scheduler.run())
    try:
        await instance.run()
    finally:
        scheduler.stop()
        await beating


async def serve(instance: Worker, scheduler: Beat | None = None) -> None:
    """Run ``instance`` (and ``scheduler``) until a signal stops it; errors propagate."""
    loop = asyncio.get_running_loop()
    run = asyncio.ensure_future(_run(instance, scheduler))
    on_signal = _Signals(instance, run, scheduler)
    for signum in SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    announce = asyncio.ensure_future(_announce(instance))
    try:
        await run
    except asyncio.CancelledError:
        if not on_signal.cancelled:
            raise
    finally:
        announce.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announce
        _default_handlers()
    logger.info("worker stopped")
