"""Settling outcomes in batches: results stored and messages acked together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from asyncq.brokers import Consumer, DeadItem, Outgoing, Settlement
from asyncq.errors import NotReplicated
from asyncq.results import ResultBackend
from asyncq.worker.outcomes import Ack, Dead, Outcome, Requeue, RetryLater, rejection

__all__ = ["Settler"]

logger = logging.getLogger("asyncq.worker")


class Settler:
    """Gathers outcomes and settles each gathered batch in as few round trips as possible.

    When the consumer and the result backend share a server, results are written by
    the broker in the same atomic step as the ack; otherwise results are stored first
    and acked after. A failed batch is retried, never dropped.
    """

    def __init__(self, consumer: Consumer, backend: ResultBackend,
                 publish: Callable[[Sequence[Outgoing]], Awaitable[None]],
                 on_settled: Callable[[int], None]) -> None:
        self._consumer = consumer
        self._publish = publish
        self._backend = backend
        self._fused = consumer.server_id is not None and consumer.server_id == backend.server_id
        self._on_settled = on_settled
        self._pending: list[Outcome] = []
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # set when nothing is pending or in flight
        self._settled.set()
        self._closing = False

    def add(self, outcome: Outcome) -> None:
        pending = self._pending
        if not pending:  # the first since the last batch went out: wake the loop
            self._settled.clear()
            self._wake.set()
        pending.append(outcome)

    async def wait_settled(self) -> None:
        """Until everything added so far is settled (retried until it is)."""
        await self._settled.wait()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def settling(self) -> int:
        """Outcomes gathered or on the wire: the room their settles will free."""
        return len(self._pending) + self._in_flight

    def close(self) -> None:
        """Let :meth:`run` return once everything gathered so far is settled."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        while not (self._closing and not self._pending):
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        delay = 0.1
        while self._pending:
            batch, self._pending = self._pending, []
            self._in_flight = len(batch)
            try:
                await self._settle(batch)
            except Exception as exc:
                self._pending[:0] = batch
                logger.warning("could not settle %d message(s) (%s); retrying in %.1fs",
                               len(batch), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            finally:
                self._in_flight = 0
            self._on_settled(len(batch))
        self._settled.set()

    async def _settle(self, batch: list[Outcome]) -> None:
        acks = [o for o in batch if type(o) is Ack]
        if len(acks) == len(batch):  # the common case: nothing else to sort out
            await self._ack(acks)
            return
        retries = [(i, o) for i, o in enumerate(batch) if isinstance(o, RetryLater)]
        if retries:  # the next attempt is safely queued before the current one is acked
            await self._publish_retries([r.again for _, r in retries])
            for index, retry in retries:  # queued: a settle tried again queues no copy
                batch[index] = ack = Ack(retry.delivery, retry.write)
                acks.append(ack)
        dead = [o for o in batch if isinstance(o, Dead)]
        if acks:
            await self._ack(acks)
        if dead:
            await self._dead(dead)
        for counted in (False, True):
            requeue = [o.delivery for o in batch if isinstance(o, Requeue)
                       and o.counted is counted]
            if requeue:
                await self._consumer.requeue(requeue, counted=counted)

    async def _publish_retries(self, messages: list[Outgoing]) -> None:
        try:
            await self._publish(messages)
        except NotReplicated as exc:  # the server has them; the ack waits for replicas
            logger.warning("retries queued, not yet on enough replicas: %s", exc)

    async def _ack(self, acks: Sequence[Ack]) -> None:
        if self._fused:
            await self._consumer.ack(acks)
            return
        await self._backend.store_writes([a.write for a in acks if a.write is not None])
        await self._consumer.ack([Settlement(a.delivery) for a in acks])

    async def _dead(self, dead: Sequence[Dead]) -> None:
        writes = {d.task_id: self._backend.key_write(d.task_id, rejection(d))
                  for d in dead if d.task_id is not None}
        if not self._fused:  # the handles' FAILURE records first, then the dead letters
            await self._backend.store_writes(list(writes.values()))
            writes = {}
        for d in dead:
            logger.error("dead-lettered a message from %r: %s", d.delivery.queue, d.reason)
        await self._consumer.dead_letter([
            DeadItem(d.delivery, d.reason, d.task_id, d.task,
                     writes.get(d.task_id) if d.task_id is not None else None)
            for d in dead])
