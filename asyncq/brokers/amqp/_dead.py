"""Dead letters on RabbitMQ: the headers we write, and listing, purging, requeueing.

A dead letter is the original body in ``<queue>.dead`` with headers saying why. Letters
that RabbitMQ dead-lettered itself (a quorum queue's delivery limit) carry only its
``x-death`` headers; they are listed with a reason taken from those.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiormq import spec
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelNotFoundEntity

from asyncq.brokers import DeadItem, DeadLetter
from asyncq.brokers.amqp._connection import Connection
from asyncq.brokers.amqp._layout import (
    ETA_HEADER,
    REDELIVERIES_HEADER,
    Layout,
    copy_properties,
    dead_queue,
    header_int,
)
from asyncq.brokers.amqp._publisher import Publisher

__all__ = ["dead_properties", "list_dead", "purge_dead", "requeue_dead"]

REASON: Final = "x-asyncq-reason"
TASK_ID: Final = "x-asyncq-task-id"
TASK: Final = "x-asyncq-task"
DELIVERIES: Final = "x-asyncq-deliveries"
DEAD_AT: Final = "x-asyncq-dead-at"
_CLEARED: Final = dict.fromkeys((REASON, TASK_ID, TASK, DELIVERIES, DEAD_AT, ETA_HEADER,
                                 REDELIVERIES_HEADER))


def dead_properties(item: DeadItem, message: Any) -> spec.Basic.Properties:
    """The original message's properties plus why it died (and a fresh ``message_id``)."""
    return copy_properties(message, {
        **_CLEARED,
        REASON: item.reason,
        TASK_ID: item.task_id,
        TASK: item.task,
        DELIVERIES: item.delivery.delivery_count,
        DEAD_AT: int(time.time() * 1000),
    })


async def list_dead(conn: Connection, queue: str, limit: int) -> list[DeadLetter]:
    """Read up to ``limit`` letters and give them all back at the end (not atomic)."""
    letters: list[DeadLetter] = []
    try:
        async with conn.raw_channel(unbounded=True) as channel:
            last: int | None = None
            while len(letters) < limit:
                got = await channel.basic_get(dead_queue(queue), timeout=conn.timeout)
                if not isinstance(got.delivery, spec.Basic.GetOk):
                    break
                letters.append(_letter(queue, got))
                last = got.delivery.delivery_tag
            if last is not None:
                async with asyncio.timeout(conn.timeout):
                    await channel.basic_nack(last, multiple=True, requeue=True)
    except ChannelNotFoundEntity:
        return []
    return letters


async def purge_dead(conn: Connection, queue: str) -> int:
    try:
        async with conn.raw_channel() as channel:
            ok = await channel.queue_purge(dead_queue(queue))
    except ChannelNotFoundEntity:
        return 0
    return int(ok.message_count or 0)


async def requeue_dead(conn: Connection, layout: Layout, publisher: Publisher, queue: str,
                       refs: Sequence[str]) -> int:
    """Move the letters whose ``ref`` is in ``refs`` back onto ``queue``; the rest stay."""
    wanted = set(refs)
    moved = 0
    await layout.queue(queue)
    try:
        async with conn.raw_channel(unbounded=True) as channel:
            kept: int | None = None
            while wanted:
                got = await channel.basic_get(dead_queue(queue), timeout=conn.timeout)
                if not isinstance(got.delivery, spec.Basic.GetOk):
                    break
                tag = int(got.delivery.delivery_tag or 0)
                ref = got.header.properties.message_id or ""
                if ref not in wanted:
                    kept = tag
                    continue
                properties = copy_properties(got.header.properties, _CLEARED)
                await publisher.send("", queue, got.body, properties)
                async with asyncio.timeout(conn.timeout):
                    await channel.basic_ack(tag)
                wanted.discard(ref)
                moved += 1
            if kept is not None:
                async with asyncio.timeout(conn.timeout):
                    await channel.basic_nack(kept, multiple=True, requeue=True)
    except ChannelNotFoundEntity:
        return moved
    return moved


def _letter(queue: str, got: DeliveredMessage) -> DeadLetter:
    properties = got.header.properties
    headers: Mapping[str, Any] = properties.headers or {}
    deaths = headers.get("x-death")
    death = deaths[0] if isinstance(deaths, list) and deaths else {}
    return DeadLetter(
        ref=properties.message_id or "",
        queue=queue,
        body=got.body,
        reason=_text(headers.get(REASON)) or _server_reason(headers),
        task_id=_text(headers.get(TASK_ID)) or properties.correlation_id,
        task=_text(headers.get(TASK)),
        deliveries=header_int(headers, DELIVERIES) or header_int(headers, "x-delivery-count"),
        dead_at=_dead_at(headers, death),
        extra={"source": "asyncq" if REASON in headers else "rabbitmq",
               "reply_to": properties.reply_to},
    )


def _server_reason(headers: Mapping[str, Any]) -> str:
    reason = _text(headers.get("x-first-death-reason")) or "unknown"
    return f"dead-lettered by RabbitMQ: {reason}"


def _dead_at(headers: Mapping[str, Any], death: Any) -> float:
    at = header_int(headers, DEAD_AT)  # unix ms (AMQP floats are too coarse)
    if at:
        return at / 1000
    when = death.get("time") if isinstance(death, dict) else None
    return when.timestamp() if isinstance(when, dt.datetime) else 0.0


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value if isinstance(value, str) and value else None
