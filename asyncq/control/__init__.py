"""Control of tasks already sent: revocations, and where they travel.

A revocation (``await handle.revoke()``, ``await app.revoke(task_id)``, ``asyncq revoke``)
does two things:

1. it stores a final ``REVOKED`` record for the task, so every handle reports
   ``REVOKED`` at once and awaiting raises :class:`~asyncq.TaskRevoked`;
2. it tells every worker of the app, through a :class:`RevokeBus` on the broker's own
   server, which keeps it for ``window`` seconds: a worker started later (or restarted)
   reads what was revoked in that window before it takes any message.

Workers keep the ids in a :class:`RevokedSet` (bounded and expiring) and skip a revoked
message with a set lookup (:class:`~asyncq.middleware.revoke.Revoke`): no server round
trip per task. The buses:

- Redis: a sorted set ``asyncq:control:{<app>}:revoked`` (scored by time, trimmed to the
  window and to ``max_entries``) and pub/sub on ``asyncq:control:<app>:revoke``;
- RabbitMQ: a fanout exchange ``asyncq.control.<app>`` for the live ones, and a stream
  queue ``asyncq.control.<app>.revoked`` (``x-max-age`` = the window) that a starting
  worker reads from the start of the window;
- memory: in-process, for tests.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from asyncq import codec
from asyncq.errors import DecodeError
from asyncq.message import valid_id

if TYPE_CHECKING:
    from asyncq.brokers import Broker

__all__ = [
    "DEFAULT_MAX_REVOKED",
    "DEFAULT_REVOKE_WINDOW",
    "Revocation",
    "RevokeBus",
    "RevokedSet",
    "bus_for",
]

logger = logging.getLogger("asyncq.control")

#: How long a revocation holds (seconds): as long as a result record lives by default.
DEFAULT_REVOKE_WINDOW: Final = 24 * 3600.0
#: The most revocations kept (on the server and in each worker); the oldest go first.
DEFAULT_MAX_REVOKED: Final = 50_000


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revoked task id; ``terminate`` also cancels a run in progress; ``at`` is
    the unix time of the revocation."""

    task_id: str
    terminate: bool = False
    at: float = 0.0

    def encode(self) -> bytes:
        return codec.dumps([self.task_id, self.terminate, self.at])

    @classmethod
    def decode(cls, data: bytes) -> Revocation:
        """Untrusted bytes from the server: anything but a well-formed entry raises."""
        wire = codec.loads(data, max_size=1024)
        if (not isinstance(wire, list) or len(wire) != 3 or not isinstance(wire[0], str)
                or not valid_id(wire[0]) or not isinstance(wire[1], bool)
                or not isinstance(wire[2], int | float)):
            raise DecodeError("not an asyncq revocation")
        return cls(wire[0], wire[1], float(wire[2]))


class RevokedSet:
    """Revoked ids with their expiry: at most ``max_entries``, each kept ``window`` s.

    Lookups are one dict access; adds drop expired entries from the oldest end (ids
    arrive roughly in time order) and the oldest ones beyond ``max_entries``.
    """

    def __init__(self, window: float = DEFAULT_REVOKE_WINDOW,
                 max_entries: int = DEFAULT_MAX_REVOKED) -> None:
        self.window = window
        self.max_entries = max_entries
        self._until: OrderedDict[str, float] = OrderedDict()
        #: the expiry of a revoked id's entry (None if there is none), with no Python
        #: call: a worker asks for every message it runs (``in`` still checks the expiry)
        self.until_of: Callable[[str], float | None] = self._until.get

    def __contains__(self, task_id: object) -> bool:
        until = self._until.get(task_id)  # type: ignore[call-overload]
        return until is not None and until > time.time()

    def __len__(self) -> int:
        return len(self._until)

    def add(self, revocation: Revocation) -> bool:
        """Keep ``revocation`` until it expires; False if it already has."""
        until = revocation.at + self.window
        now = time.time()
        if until <= now:
            return False
        self._until[revocation.task_id] = max(until, self._until.get(revocation.task_id, 0))
        self._until.move_to_end(revocation.task_id)
        self._trim(now)
        return True

    def _trim(self, now: float) -> None:
        while self._until:
            task_id, until = next(iter(self._until.items()))
            if until > now and len(self._until) <= self.max_entries:
                return
            del self._until[task_id]


OnRevoke = Callable[[Revocation], None]


def deliver_revocation(on_revoke: OnRevoke, data: Any) -> None:
    """Hand a revocation read from the server to ``on_revoke``; malformed data (the
    server is shared: anyone may write there) is logged and skipped."""
    try:
        revocation = Revocation.decode(data)
    except (DecodeError, TypeError, ValueError):
        logger.warning("ignored a malformed revocation from the server")
        return
    on_revoke(revocation)


async def until_either(first: asyncio.Event, second: asyncio.Event) -> None:
    """Wait until one of two events is set."""
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


class RevokeBus(abc.ABC):
    """Carries revocations to every worker and keeps them for ``window`` seconds."""

    def __init__(self, broker: Any, app_name: str, window: float, max_entries: int) -> None:
        self.broker = broker
        self.app_name = app_name
        self.window = window
        self.max_entries = max_entries

    @abc.abstractmethod
    async def publish(self, revocation: Revocation) -> None:
        """Keep ``revocation`` on the server and tell the workers listening now."""

    @abc.abstractmethod
    async def listen(self, on_revoke: OnRevoke, ready: asyncio.Event,
                     stop: asyncio.Event) -> None:
        """Call ``on_revoke`` for every revocation of the window, then for each new one,
        until ``stop`` is set (then return within about a second: a client library's
        read is not always safe to cancel). ``ready`` is set once the window's
        revocations are delivered (later ones are then not missed). Reconnects by
        itself."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Forget every kept revocation (deletes the server's set or stream)."""


def bus_for(broker: Broker, app_name: str, *, window: float = DEFAULT_REVOKE_WINDOW,
            max_entries: int = DEFAULT_MAX_REVOKED) -> RevokeBus:
    """The revoke bus on ``broker``'s server."""
    kind = _kind(broker)
    if kind == "redis":
        from asyncq.control._redis import RedisRevokeBus

        return RedisRevokeBus(broker, app_name, window, max_entries)
    if kind == "amqp":
        from asyncq.control._amqp import AmqpRevokeBus

        return AmqpRevokeBus(broker, app_name, window, max_entries)
    from asyncq.control._memory import MemoryRevokeBus

    return MemoryRevokeBus(broker, app_name, window, max_entries)


def _kind(broker: Any) -> str:
    module = type(broker).__module__
    if module.startswith("asyncq.brokers.redis"):
        return "redis"
    if module.startswith(("asyncq.brokers.amqp", "asyncq.brokers._amqp")):
        return "amqp"
    return "memory"
