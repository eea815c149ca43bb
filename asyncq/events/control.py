"""Control over the wire: requests broadcast to workers, replies collected in a timeout.

A request is a JSON object ``{"id", "cmd", "args", "dest", "ts"}`` sent on the app's
``control`` topic; each worker it names (all when ``dest`` is empty) answers on the
topic ``reply.<id>`` with ``{"worker", "id", "reply"}``. With signing on
(``App(signing_keys=...)``) requests and replies are signed with the app's keys, and
unsigned, forged or stale (older than :data:`MAX_AGE` seconds) ones are dropped.

Commands: ``ping``, ``stats``, ``active``, ``reserved``, ``scheduled``, ``registered``,
``shutdown``, ``rate_limit`` and ``cancel_consumer``. ``rate_limit`` checks the rate as
``@app.task(rate_limit=...)`` does and stores it in the worker
(:func:`rate_limit_overrides`); asyncq's rate limiter
(:mod:`asyncq.middleware.rate_limit`) does not read it yet, so the value changes
nothing by itself.
``cancel_consumer`` is answered with an error: a worker's consumer cannot drop one queue
while it runs (restart the worker with other ``-Q``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from asyncq.errors import ConfigurationError, DecodeError, SignatureError
from asyncq.events import Bus, Subscription, bus_for, decode, encode
from asyncq.ratelimit import parse_rate
from asyncq.signing import MAGIC

if TYPE_CHECKING:
    from asyncq.app import App
    from asyncq.brokers import Delivery
    from asyncq.signing import Signer
    from asyncq.worker import Worker

__all__ = ["CONTROL_TOPIC", "MAX_AGE", "Control", "ControlServer", "Inspect",
           "rate_limit_overrides"]

logger = logging.getLogger("asyncq.events")

CONTROL_TOPIC: Final = "control"
#: Requests older than this (seconds, by the sender's clock) are ignored.
MAX_AGE: Final = 60.0

_OVERRIDES: weakref.WeakKeyDictionary[App, dict[str, str]] = weakref.WeakKeyDictionary()


def rate_limit_overrides(app: App) -> dict[str, str]:
    """Rates set with ``control rate-limit`` in this process: task name -> ``"10/s"``."""
    return _OVERRIDES.setdefault(app, {})


def seal(signer: Signer | None, data: Mapping[str, Any]) -> bytes:
    body = encode(data)
    return signer.sign(body) if signer is not None else body


def unseal(signer: Signer | None, body: bytes) -> dict[str, Any] | None:
    """The JSON object in ``body``; ``None`` if it is not signed as the app requires."""
    if signer is not None:
        try:
            body = signer.verify(body)
        except SignatureError as exc:
            logger.warning("dropped a control message: %s", exc)
            return None
    elif body.startswith(MAGIC):
        logger.warning("dropped a signed control message: this app has no signing keys")
        return None
    return decode(body)


# -- worker side ----------------------------------------------------------------------
class ControlServer:
    """Answers control requests for one worker."""

    def __init__(self, worker: Worker, bus: Bus, name: str, subscription: Subscription) -> None:
        self.worker = worker
        self.app = worker.app
        self.bus = bus
        self.name = name
        self.subscription = subscription
        self.commands: dict[str, Callable[[Mapping[str, Any]], Awaitable[Any]]] = {
            "ping": self._ping, "stats": self._stats, "active": self._active,
            "reserved": self._reserved, "scheduled": self._scheduled,
            "registered": self._registered, "shutdown": self._shutdown,
            "rate_limit": self._rate_limit, "cancel_consumer": self._cancel_consumer,
        }

    async def serve(self) -> None:
        while True:
            body = await self.subscription.get(5.0)
            if body is not None:
                try:
                    await self.handle(body)
                except Exception:
                    logger.exception("a control request failed")

    async def handle(self, body: bytes) -> None:
        request = unseal(self.app.codec.signer, body)
        if request is None or not self._for_me(request):
            return
        command = self.commands.get(str(request.get("cmd")))
        raw_args = request.get("args")
        args: Mapping[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        reply = (await command(args) if command is not None
                 else {"error": f"unknown command {str(request.get('cmd'))[:50]!r}"})
        answer = {"worker": self.name, "id": request.get("id"), "reply": reply}
        await self.bus.broadcast(f"reply.{request.get('id')}",
                                 seal(self.app.codec.signer, answer))

    def _for_me(self, request: Mapping[str, Any]) -> bool:
        try:
            if time.time() - float(request.get("ts", 0)) > MAX_AGE:
                return False
        except (TypeError, ValueError):
            return False
        if not isinstance(request.get("id"), str) or not RATE_ID.fullmatch(request["id"]):
            return False
        dest = request.get("dest")
        return not dest or (isinstance(dest, list) and self.name in dest)

    async def _ping(self, args: Mapping[str, Any]) -> Any:
        return {"ok": "pong"}

    async def _stats(self, args: Mapping[str, Any]) -> Any:
        stats = self.worker.statistics()
        return {"queues": list(self.worker.queues), "concurrency": self.worker.concurrency,
                "prefetch": self.worker.prefetch, "running": stats.running,
                "buffered": stats.buffered, "held": stats.held, "processed": stats.settled,
                "stopping": stats.stopping, "rate_limits": rate_limit_overrides(self.app)}

    async def _active(self, args: Mapping[str, Any]) -> Any:
        return [self._describe(d) for d in self.worker.held()["active"]]

    async def _reserved(self, args: Mapping[str, Any]) -> Any:
        return [self._describe(d) for d in self.worker.held()["reserved"]]

    def _describe(self, delivery: Delivery) -> dict[str, Any]:
        try:
            message = self.app.codec.decode(delivery.body)
        except DecodeError:
            return {"queue": delivery.queue, "error": "undecodable"}
        return {"id": message.id, "task": message.task, "queue": delivery.queue,
                "attempt": message.attempt, "deliveries": delivery.delivery_count}

    async def _scheduled(self, args: Mapping[str, Any]) -> Any:
        return {q: await self.app.broker.scheduled_size(q) for q in self.worker.queues}

    async def _registered(self, args: Mapping[str, Any]) -> Any:
        return sorted(self.app.tasks)

    async def _shutdown(self, args: Mapping[str, Any]) -> Any:
        logger.warning("shutdown requested over the control bus")
        asyncio.get_running_loop().call_later(0.05, self.worker.stop)  # reply first
        return {"ok": "shutting down"}

    async def _rate_limit(self, args: Mapping[str, Any]) -> Any:
        task, rate = str(args.get("task", "")), str(args.get("rate", ""))
        if task not in self.app.tasks:
            return {"error": f"no task named {task[:200]!r}"}
        try:
            parse_rate(rate)
        except ConfigurationError:
            return {"error": f"a rate is N/s, N/m or N/h, not {rate[:50]!r}"}
        rate_limit_overrides(self.app)[task] = rate
        return {"ok": f"rate limit of {task} stored as {rate}"}

    async def _cancel_consumer(self, args: Mapping[str, Any]) -> Any:
        return {"error": "cancel-consumer is not supported: the worker's consumer cannot "
                         "drop a queue while it runs; restart the worker with other -Q"}


RATE_ID: Final = re.compile(r"[0-9a-f]{32}")


# -- client side ----------------------------------------------------------------------
class Control:
    """Send control requests to an app's workers: ``app.control``."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def broadcast(self, command: str, args: Mapping[str, Any] | None = None, *,
                        destination: Sequence[str] | None = None, timeout: float = 1.0,
                        limit: int | None = None) -> dict[str, Any]:
        """Send ``command``; return ``{worker: reply}`` collected for ``timeout`` seconds
        (or until ``limit`` replies)."""
        await self.app.connect()
        bus = bus_for(self.app)
        request_id = uuid.uuid4().hex
        subscription = await bus.subscribe(f"reply.{request_id}")
        replies: dict[str, Any] = {}
        try:
            await bus.broadcast(CONTROL_TOPIC, seal(self.app.codec.signer, {
                "id": request_id, "cmd": command, "args": dict(args or {}),
                "dest": list(destination or []), "ts": time.time()}))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                body = await subscription.get(left)
                answer = None if body is None else unseal(self.app.codec.signer, body)
                if answer is not None and answer.get("id") == request_id:
                    replies[str(answer.get("worker"))] = answer.get("reply")
                    if limit is not None and len(replies) >= limit:
                        break
        finally:
            await subscription.aclose()
            await bus.aclose()
        return replies

    async def ping(self, **kw: Any) -> dict[str, Any]:
        return await self.broadcast("ping", **kw)

    async def shutdown(self, **kw: Any) -> dict[str, Any]:
        return await self.broadcast("shutdown", **kw)

    async def rate_limit(self, task: str, rate: str, **kw: Any) -> dict[str, Any]:
        return await self.broadcast("rate_limit", {"task": task, "rate": rate}, **kw)

    async def cancel_consumer(self, queue: str, **kw: Any) -> dict[str, Any]:
        return await self.broadcast("cancel_consumer", {"queue": queue}, **kw)

    def inspect(self, destination: Sequence[str] | None = None,
                timeout: float = 1.0) -> Inspect:
        return Inspect(self, destination, timeout)


class Inspect:
    """Read-only questions to workers: ``app.inspect().active()`` and friends."""

    def __init__(self, control: Control, destination: Sequence[str] | None = None,
                 timeout: float = 1.0) -> None:
        self._control = control
        self._destination = destination
        self._timeout = timeout

    async def _ask(self, command: str) -> dict[str, Any]:
        return await self._control.broadcast(command, destination=self._destination,
                                             timeout=self._timeout)

    async def ping(self) -> dict[str, Any]:
        return await self._ask("ping")

    async def stats(self) -> dict[str, Any]:
        return await self._ask("stats")

    async def active(self) -> dict[str, Any]:
        return await self._ask("active")

    async def reserved(self) -> dict[str, Any]:
        return await self._ask("reserved")

    async def scheduled(self) -> dict[str, Any]:
        return await self._ask("scheduled")

    async def registered(self) -> dict[str, Any]:
        return await self._ask("registered")
