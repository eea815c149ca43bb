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
import gc
import logging
import signal
from collections.abc import Callable

from asyncq.beat import Beat
from asyncq.cli._early import take_early
from asyncq.cli.supervise import mark_ready
from asyncq.errors import BrokerUnavailable
from asyncq.worker import Worker

__all__ = ["SIGNALS", "Signals", "default_handlers", "serve"]

logger = logging.getLogger("asyncq.worker")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Signals:
    """What each SIGTERM/SIGINT does to a long-running command (worker, beat).

    Before ``started()`` the first signal cancels ``run`` (a connect in progress: nothing
    to finish); after it, the first calls ``stop`` and the second ``abort``. After the
    last of these the default handlers are back, so one more signal ends the process.
    """

    def __init__(self, run: asyncio.Future[None], *, started: Callable[[], bool],
                 stop: Callable[[], None], abort: Callable[[], None],
                 stopping: str, aborting: str, log: logging.Logger = logger) -> None:
        self.run = run
        self.log = log
        self.started = started
        self.stop = stop
        self.abort = abort
        self.stopping = stopping
        self.aborting = aborting
        self.count = 0
        self.cancelled = False

    def __call__(self, signum: int) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if not self.started():
            self.log.warning("%s received while starting: stopping", name)
            self.cancelled = True
            self.stop()
            self.run.cancel()
            default_handlers()
        elif self.count == 1:
            self.log.warning("%s received: %s", name, self.stopping)
            self.stop()
        else:
            self.log.warning("%s received again: %s", name, self.aborting)
            self.abort()
            default_handlers()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            loop.add_signal_handler(signum, self, signum)


def default_handlers() -> None:
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.remove_signal_handler(signum)
        signal.signal(signum, signal.SIG_DFL)


async def _announce(instance: Worker) -> None:
    await instance.started.wait()
    logger.info("ready: consuming %s", ", ".join(instance.queues))
    mark_ready()
    # What start-up made (modules, the app, its clients) lives as long as the process:
    # kept out of the collector's full passes, which otherwise walk all of it again and
    # again while the worker makes and drops a few objects per message. After the
    # "ready" line: the full pass takes tens of milliseconds that need not delay it
    # (the fetch loop was already started; it sees no difference).
    gc.collect()
    gc.freeze()


async def _patient(instance: Worker, scheduler: Beat | None, patience: float) -> None:
    """The worker, trying again for ``patience`` seconds while its broker cannot be
    reached at start (a supervised child restarted during a broker outage)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            await _run(instance, scheduler)
            return
        except BrokerUnavailable as exc:
            if instance.started.is_set() or loop.time() >= deadline:
                raise
            logger.warning("the broker cannot be reached yet (%s); trying again", exc)
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))


async def _run(instance: Worker, scheduler: Beat | None) -> None:
    """The worker, and the embedded scheduler (``--beat``) that stops with it."""
    if scheduler is None:
        await instance.run()
        return
    beating = asyncio.ensure_future(scheduler.run())
    try:
        await instance.run()
    except asyncio.CancelledError:  # a signal while starting: the scheduler may be connecting
        beating.cancel()
        raise
    finally:
        scheduler.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


async def serve(instance: Worker, scheduler: Beat | None = None, *,
                patience: float = 0.0) -> None:
    """Run ``instance`` (and ``scheduler``) until a signal stops it; errors propagate.
    ``patience``: seconds to keep trying a broker that cannot be reached at start."""
    run = asyncio.ensure_future(_patient(instance, scheduler, patience))

    def stop() -> None:
        if scheduler is not None:
            scheduler.stop()
        instance.stop()

    on_signal = Signals(run, started=instance.started.is_set, stop=stop, abort=instance.abort,
                        stopping="finishing running tasks (again to abort them)",
                        aborting="aborting running tasks (again to exit now)")
    on_signal.install()
    for signum in take_early():
        asyncio.get_running_loop().call_soon(on_signal, signum)
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
        default_handlers()
    logger.info("worker stopped")
