"""The producer side of an App: sending calls, one at a time or many at once.

Every ``enqueue`` comes through here. The hot path is a plain call with no enqueue
middleware: prepare (:mod:`asyncq._outgoing`), make sure the App is connected on this
event loop (one identity test), publish. Enqueue middleware (``before_enqueue`` /
``after_enqueue``) and ``SCHEDULED`` records for delayed calls
(:mod:`asyncq.control.scheduled`) are paid for only by the calls that have them.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from asyncq._outgoing import Preparer
from asyncq.control.scheduled import mark_scheduled
from asyncq.middleware import Call, Middleware, overrides
from asyncq.task import Signature

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.result import TaskResult

__all__ = ["Sender"]

R = TypeVar("R")


class Sender:
    """Sends an App's calls: ``App.send_signature`` and ``App.enqueue_many``."""

    def __init__(self, app: App) -> None:
        self._app = app
        self.preparer = Preparer(app)
        #: the middleware with enqueue hooks, outermost first (none: the plain path)
        self.hooks: list[Middleware] = []

    def set_middleware(self, middleware: Iterable[Middleware]) -> None:
        self.hooks = [mw for mw in middleware
                      if overrides(mw, "before_enqueue") or overrides(mw, "after_enqueue")]

    def send(self, sig: Signature[R]) -> Coroutine[Any, Any, TaskResult[R]]:
        """Send one call; the coroutine returns once the broker has it. A plain function
        handing out the one coroutine that does the work: a coroutine object more per
        call is more work for the garbage collector while thousands of calls wait."""
        if self.hooks:
            return self._send_one_with_hooks(sig)
        return self._send_plain(sig)

    async def _send_one_with_hooks(self, sig: Signature[R]) -> TaskResult[R]:
        return (await self._send_with_hooks([sig]))[0]

    async def _send_plain(self, sig: Signature[R]) -> TaskResult[R]:
        """Prepare and publish one call through the broker's batching ``publish``:
        concurrent enqueues share round trips."""
        outgoing, handle = self.preparer.prepare(sig)
        del sig  # packed: not kept alive while the broker has it (thousands may wait)
        app = self._app
        if not app.on_bound_loop():  # not connected, or on another loop
            await app.connect()
        await app.broker.publish(outgoing)
        if outgoing.eta is not None:
            await mark_scheduled(app, [(outgoing, handle)])
        return handle

    async def send_many(self, signatures: Iterable[Signature[R]]) -> list[TaskResult[R]]:
        """Send many calls in as few round trips as the broker allows."""
        if self.hooks:
            return await self._send_with_hooks(list(signatures))
        return await self._send_batch(signatures)

    async def _send_batch(self, signatures: Iterable[Signature[R]]) -> list[TaskResult[R]]:
        """Prepare, publish in as few round trips as the broker allows, and record
        SCHEDULED for the delayed calls only."""
        outgoing, handles, delayed = self.preparer.prepare_many(signatures)
        app = self._app
        await app.connect()
        await app.broker.publish_many(outgoing)
        if delayed:
            await mark_scheduled(app, [(outgoing[i], handles[i]) for i in delayed])
        return handles

    async def _send_with_hooks(self, sigs: list[Signature[R]]) -> list[TaskResult[R]]:
        """Enqueue with middleware: each call's hooks may add headers or refuse it."""
        hooks = self.hooks
        calls = [Call(s.task, s.args, s.kwargs, s.options, dict(s.options.headers))
                 for s in sigs]
        for call in calls:
            for mw in hooks:
                await mw.before_enqueue(call)
        ready = [Signature(c.task, c.args, c.kwargs, c.options.with_headers(c.headers))
                 for c in calls]
        # one call (an `await task.enqueue()`) takes the batching path of calls without
        # hooks: as a batch of one, each concurrent enqueue was a round trip of its own
        handles: list[TaskResult[Any]] = (
            [await self._send_plain(ready[0])] if len(ready) == 1
            else await self._send_batch(ready))
        for call, handle in zip(calls, handles, strict=True):
            for mw in reversed(hooks):
                await mw.after_enqueue(call, handle.id)
        return handles
