"""Worker heartbeats, task events and control messages: the operator's side of asyncq.

Everything here travels on a small :class:`Bus` per app, with one implementation per
broker, using the broker's own server:

==========  ==================================================  =========================
broker      events (bounded)                                    control / replies
==========  ==================================================  =========================
Redis       stream ``asyncq:events:{app}`` (XADD MAXLEN ~)      pub/sub channels
RabbitMQ    fanout exchange ``asyncq.events.<app>``; each       direct exchange
            listener has its own exclusive, auto-delete queue   ``asyncq.bus.<app>``
            (x-max-length, x-overflow drop-head)
memory      a bounded deque in this process                     in-process queues
==========  ==================================================  =========================

Events travel in batches, a msgpack array each (one Redis stream entry, one AMQP
message), of maps, of arrays for the outcome of a run (the fields of :data:`ROW`, in
order: readers make it a map, so a run costs the worker one tuple), and of blocks of
successful runs as columns (a worker's :data:`SUCCESS_ROW` rows, see
:mod:`asyncq.events._block`; readers make each row the map its full row gives);
control requests and replies are JSON objects.

Workers also keep a registry of themselves (Redis: hash ``asyncq:workers:{app}``;
memory: a dict) so ``asyncq status`` can show a worker that died without saying so:
it is *lost* once :data:`LOST_AFTER` heartbeats in a row are missing. RabbitMQ has no
such store: there ``status`` shows the workers that answer a ``stats`` request, and
long-running listeners (the dashboard, ``asyncq events``) mark lost workers themselves.

Nothing here runs unless a worker is started with the
:class:`~asyncq.events.monitor.Events` (or ``Heartbeats``) middleware, e.g.
``asyncq worker APP --events``.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgpack

from asyncq.events._block import SHORT, blocks, expand, full_row, is_block
from asyncq.middleware._row import Successes

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["LOST_AFTER", "MAX_EVENTS", "ROW", "SUCCESS_ROW", "Bus", "Subscription", "as_event",
           "broker_kind", "bus_for", "chunks", "decode", "encode", "is_lost", "pack_events",
           "rows_of", "unpack_events", "weight", "worker_name"]

#: A worker is shown as lost after this many heartbeat intervals without one.
LOST_AFTER: Final = 3
#: Events kept per app (Redis stream, approximate) or per listener queue (RabbitMQ).
MAX_EVENTS: Final = 10_000
#: Events (maps or outcome rows) in one stream entry (Redis) or message (RabbitMQ) at most.
ROWS_PER_ENTRY: Final = 500
#: Worker registry entries silent for longer than this are dropped when read.
FORGET_AFTER: Final = 24 * 3600.0


class Subscription(Protocol):
    """Messages published on one topic after the subscription was made."""

    async def get(self, timeout: float) -> bytes | None:
        """The next message, or ``None`` after ``timeout`` seconds."""
        ...

    async def aclose(self) -> None: ...


class Bus(Protocol):
    """The transport of events, control requests and replies for one app."""

    async def emit(self, events: Sequence[Event]) -> None:
        """Append events (maps, and outcome rows: see :data:`ROW`) to the app's bounded
        event stream."""
        ...

    def follow(self, history: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Events from now on (after up to ``history`` recent ones, where kept)."""
        ...

    async def recent(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` recent events, oldest first (RabbitMQ keeps none: ``[]``)."""
        ...

    async def broadcast(self, topic: str, body: bytes) -> None:
        """Send ``body`` to every current subscriber of ``topic`` (none: dropped)."""
        ...

    async def subscribe(self, topic: str) -> Subscription:
        """Subscribe to ``topic``; messages sent after this returns are received."""
        ...

    async def put_worker(self, name: str, info: Mapping[str, Any]) -> None:
        """Record a worker's latest heartbeat (where the broker can store it)."""
        ...

    async def drop_worker(self, name: str) -> None: ...

    async def workers(self) -> list[dict[str, Any]] | None:
        """Recorded workers, or ``None`` where the broker keeps no registry."""
        ...

    async def aclose(self) -> None: ...


def broker_kind(broker: object) -> str | None:
    """``"redis"``, ``"amqp"`` or ``"memory"`` for asyncq's brokers (and subclasses),
    without importing a client library the broker does not use."""
    for cls in type(broker).__mro__:
        for kind in ("redis", "amqp", "memory"):
            if cls.__module__.startswith(f"asyncq.brokers.{kind}"):
                return kind
    return None


def bus_for(app: App) -> Bus:
    """The bus of ``app``'s broker (Redis, RabbitMQ or memory)."""
    broker: Any = app.broker
    kind = broker_kind(broker)
    if kind == "memory":
        from asyncq.events._memory import MemoryBus

        return MemoryBus(broker.url, app.name)
    if kind == "redis":
        from asyncq.events._redis import RedisBus

        return RedisBus(broker.client, app.name)
    if kind == "amqp":
        from asyncq.events._amqp import AmqpBus

        return AmqpBus(broker, app.name)
    from asyncq.errors import ConfigurationError

    raise ConfigurationError(f"events are not supported on {type(broker).__name__}")


def worker_name() -> str:
    """This process's worker name: ``pid@host``."""
    return f"{os.getpid()}@{socket.gethostname()}"


#: The fields of a run's outcome row (:data:`asyncq.middleware.OutcomeRow`), in order.
ROW: Final = ("type", "ts", "id", "task", "queue", "attempt", "state", "runtime", "error",
              "delay", "worker", "enqueued_at")
#: The fields of a success row, the short form of a row of type ``task-succeeded``
#: (state ``SUCCESS``, no error or delay): the worker's row for most runs. In a batch on
#: the wire, success rows travel as columns (:mod:`asyncq.events._block`).
SUCCESS_ROW: Final = ("ts", "id", "task", "queue", "attempt", "runtime", "worker",
                      "enqueued_at")

#: An event: a map, an outcome row (:data:`ROW`, :data:`SUCCESS_ROW`), or success rows
#: as columns (:class:`~asyncq.middleware._row.Successes`, as many events as rows).
Event = Mapping[str, Any] | Sequence[Any] | Successes


def weight(item: Event) -> int:
    """The events ``item`` stands for: its rows if it is :class:`Successes`, else 1."""
    return len(item) if type(item) is Successes else 1


def rows_of(item: Event) -> Sequence[Any]:
    """``item`` as the events it stands for: a :class:`Successes`' rows, else itself."""
    return list(item.rows()) if isinstance(item, Successes) else (item,)


def chunks(events: Sequence[Event], size: int = ROWS_PER_ENTRY) -> list[Sequence[Event]]:
    """``events`` cut into batches of ``size`` events at most (counted by
    :func:`weight`; success columns are cut where a batch is full)."""
    if Successes not in set(map(type, events)):
        return [events[start:start + size] for start in range(0, len(events), size)]
    out: list[Sequence[Event]] = []
    chunk: list[Event] = []
    room = size
    for item in events:
        for part in _parts(item, room, size):
            if room == 0:
                out.append(chunk)
                chunk, room = [], size
            chunk.append(part)
            room -= weight(part)
    if chunk:
        out.append(chunk)
    return out


def _parts(item: Event, room: int, size: int) -> Iterator[Event]:
    """``item``, or a :class:`Successes` in parts: one that fills ``room`` (or a whole
    batch when there is none), then batches of ``size`` rows."""
    if not isinstance(item, Successes) or len(item) <= (room or size):
        yield item
        return
    start, n = 0, len(item)
    while start < n:
        stop = min(n, start + (room or size))
        yield item.part(start, stop)
        start, room = stop, 0


def as_event(item: Any) -> dict[str, Any] | None:
    """An event as a map: a map as is, an outcome row (:data:`ROW`, or
    :data:`SUCCESS_ROW`) with its ``None`` fields left out; ``None`` for anything else
    (the bus is not trusted)."""
    if isinstance(item, dict):
        return item
    if isinstance(item, list | tuple) and len(item) == SHORT and isinstance(item[1], str):
        item = full_row(item)
    if isinstance(item, list | tuple) and len(item) == len(ROW):
        event = {key: value for key, value in zip(ROW, item, strict=True) if value is not None}
        if isinstance(event.get("type"), str):
            return event
    return None


def pack_events(events: Sequence[Event]) -> bytes:
    """A batch of events (maps and outcome rows) as msgpack (several times cheaper to
    make than JSON); success rows go as columns (:func:`asyncq.events._block.blocks`)."""
    return bytes(msgpack.packb(blocks(events), use_bin_type=True, default=str))


def unpack_events(raw: bytes) -> list[dict[str, Any]]:
    """The events of a batch; anything else in it is dropped (the bus is not trusted)."""
    try:
        value = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception:
        return []
    items = value if isinstance(value, list) else [value]
    events: list[dict[str, Any]] = []
    for item in items:
        if is_block(item):
            events += _block_events(item)
        elif (event := as_event(item)) is not None:
            events.append(event)
    return events


def _block_events(block: list[Any]) -> list[dict[str, Any]]:
    """The events of a block of success rows; none if it is malformed."""
    try:
        rows = list(expand(block))
    except (ValueError, TypeError, struct.error):
        return []
    return [event for event in map(as_event, rows) if event is not None]


def encode(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=str).encode()


def decode(raw: bytes | str) -> dict[str, Any] | None:
    """A JSON object, or ``None`` for anything else (the bus is not trusted)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def is_lost(info: Mapping[str, Any], now: float | None = None) -> bool:
    """Whether a worker's last heartbeat is :data:`LOST_AFTER` intervals old."""
    try:
        last = float(info.get("ts", 0))
        interval = float(info.get("interval", 2.0))
    except (TypeError, ValueError):
        return True
    return (time.time() if now is None else now) - last > LOST_AFTER * interval
