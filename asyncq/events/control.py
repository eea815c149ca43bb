"""Control over the wire: requests broadcast to workers, replies collected in a timeout.

A request is a JSON object ``{"id", "cmd", "args", "dest", "ts"}`` sent on the app's
``control`` topic; each worker it names (all when ``dest`` is empty) answers on the
topic ``reply.<id>`` with ``{"worker", "id", "reply"}``. With signing on
(``App(signing_keys=...)``) requests and replies are signed with the app's keys, and
unsigned, forged or stale (older than :data:`MAX_AGE` seconds) ones are dropped.

Commands: ``ping``, ``stats``, ``active``, ``reserved``, ``scheduled``, ``registered``,
``shutdown``, ``rate_limit``, ``cancel_consumer`` and ``add_consumer``.

- ``rate_limit`` (``{"task", "rate"}``, rate ``"10/s"`` or ``"off"``) changes the task's
  limit in the running worker at once (:meth:`RateLimit.apply
  <asyncq.middleware.rate_limit.RateLimit.apply>`); :meth:`Control.rate_limit` also
  stores it on the server first, so workers started later use it too.
- ``cancel_consumer`` (``{"queue"}``) makes the worker stop taking messages from that
  queue (:meth:`Worker.cancel_queue <asyncq.worker.Worker.cancel_queue>`): running tasks
  finish, messages waiting in the worker for a slot go back to the queue, everything
  else stays there for other consumers. ``add_consumer`` consumes a queue again (or a
  new one). Both last while the worker runs: a restarted worker consumes its ``-Q``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
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

def rate_limit_overrides(app: App) -> dict[str, str]:
    """Rates set at run time that this process's workers apply: task -> ``"10/s"``."""
    from asyncq.middleware.rate_limit import limiter_of

    return limiter_of(app).overrides


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
            "add_consumer": self._add_consumer,
        }

    async def serve(self) -> None:
        from asyncq.events.monitor import cancelling

        while not cancelling():
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
        from asyncq.middleware.rate_limit import limiter_of

        task, rate = str(args.get("task", "")), str(args.get("rate", ""))
        if rate != OFF and not _is_rate(rate):
            return {"error": f"a rate is N/s, N/m, N/h or off, not {rate[:50]!r}"}
        try:
            now = limiter_of(self.app).apply(self.worker, task, None if rate == OFF else rate)
        except ConfigurationError as exc:
            return {"error": str(exc)[:500]}
        return {"ok": f"rate limit of {task} now {now}"}

    async def _cancel_consumer(self, args: Mapping[str, Any]) -> Any:
        queue = str(args.get("queue", ""))
        try:
            handed_back = await self.worker.cancel_queue(queue)
        except ConfigurationError as exc:
            return {"error": str(exc)[:500]}
        return {"ok": f"no longer consuming {queue}", "handed_back": handed_back,
                "queues": list(self.worker.queues)}

    async def _add_consumer(self, args: Mapping[str, Any]) -> Any:
        queue = str(args.get("queue", ""))
        try:
            await self.worker.add_queue(queue)
        except (ConfigurationError, ValueError) as exc:
            return {"error": str(exc)[:500]}
        return {"ok": f"consuming {queue}", "queues": list(self.worker.queues)}


RATE_ID: Final = re.compile(r"[0-9a-f]{32}")
#: The rate that lifts a limit set at run time (back to the code's ``rate_limit=``).
OFF: Final = "off"


def _is_rate(rate: str) -> bool:
    try:
        parse_rate(rate)
    except ConfigurationError:
        return False
    return True


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
        """Limit ``task`` to ``rate`` (``"10/s"``, ``"30/m"``; ``"off"``: back to its
        ``rate_limit=``) in every worker: stored on the server (where the app keeps its
        buckets, Redis), so workers started later apply it too, then sent to the running
        ones. ConfigurationError for an unknown task or a bad rate (nothing is sent)."""
        from asyncq.middleware.rate_limit import store_rate

        if task not in self.app.tasks:
            raise ConfigurationError(f"no task named {task[:200]!r} in app {self.app.name!r}")
        if rate != OFF:
            parse_rate(rate)
        await self.app.connect()
        await store_rate(self.app, task, None if rate == OFF else rate)
        return await self.broadcast("rate_limit", {"task": task, "rate": rate}, **kw)

    async def cancel_consumer(self, queue: str, **kw: Any) -> dict[str, Any]:
        """Workers stop consuming ``queue`` (running tasks finish; the rest stays in it)."""
        return await self.broadcast("cancel_consumer", {"queue": queue}, **kw)

    async def add_consumer(self, queue: str, **kw: Any) -> dict[str, Any]:
        """Workers consume ``queue`` (again) too."""
        return await self.broadcast("add_consumer", {"queue": queue}, **kw)

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
