"""The conformance kit: the contract every broker and result backend keeps.

A package that adds a broker subclasses :class:`BrokerContract` in its own tests and
overrides the ``broker_factory`` fixture (a callable returning a new, unconnected
broker); a result backend, :class:`ResultBackendContract` with ``backend_factory``::

    from asyncq.testing.contract import BrokerContract

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def broker_factory(self):
            return lambda: MyBroker("my://localhost")

Each test runs its own event loop (no pytest-asyncio needed), uses a fresh queue or
task id, and deletes what it made. asyncq runs the same classes over its memory, Redis
(RESP2 and RESP3), RabbitMQ (classic and quorum) brokers and its result backends.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from asyncq.brokers import Broker, Consumer, DeadItem, Delivery, Outgoing, Settlement
from asyncq.errors import ResultTimeout
from asyncq.records import REJECTED, ResultRecord
from asyncq.results import ResultBackend
from asyncq.states import TaskState

__all__ = ["BrokerContract", "ResultBackendContract"]

T = TypeVar("T")
BrokerFactory = Callable[[], Broker]
BackendFactory = Callable[[], ResultBackend]


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _ids() -> str:
    return uuid.uuid4().hex


async def _fetch(consumer: Consumer, want: int = 1, timeout: float = 10.0) -> list[Delivery]:
    """Fetch until ``want`` deliveries arrived or ``timeout`` passed."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += await consumer.fetch(want - len(got), min(0.5, deadline - time.monotonic()))
    return got


class BrokerContract:
    """What asyncq's worker relies on from a broker (override ``broker_factory``)."""

    lease = 1.0

    @pytest.fixture
    def broker_factory(self) -> BrokerFactory:
        raise NotImplementedError("override the broker_factory fixture")

    def run(self, factory: BrokerFactory,
            body: Callable[[Broker, str], Awaitable[None]]) -> None:
        """Run ``body(broker, queue)`` on a connected broker and a fresh queue."""
        async def go() -> None:
            broker = factory()
            queue = f"kit-{_ids()[:12]}"
            await broker.connect()
            try:
                await body(broker, queue)
            finally:
                await broker.delete_queue(queue)
                await broker.close()
        _run(go())

    def consumer(self, broker: Broker, queue: str, prefetch: int = 10) -> Consumer:
        return broker.consumer([queue], prefetch=prefetch, lease=self.lease)

    def test_publish_fetch_ack(self, broker_factory: BrokerFactory) -> None:
        async def body(broker: Broker, queue: str) -> None:
            await broker.publish(Outgoing(_ids(), queue, b"one"))
            consumer = self.consumer(broker, queue)
            (delivery,) = await _fetch(consumer)
            assert (delivery.body, delivery.queue, delivery.delivery_count) == (
                b"one", queue, 1)
            await consumer.ack([Settlement(delivery)])
            assert await _fetch(consumer, timeout=0.5) == []
            assert await broker.queue_size(queue) == 0
            await consumer.close()
        self.run(broker_factory, body)

    def test_a_started_consumer_gets_what_comes_after(self, broker_factory: BrokerFactory
                                                      ) -> None:
        async def body(broker: Broker, queue: str) -> None:
            consumer = self.consumer(broker, queue)
            await consumer.start()
            await consumer.start()  # idempotent
            await broker.publish(Outgoing(_ids(), queue, b"later"))
            (delivery,) = await _fetch(consumer)
            assert delivery.body == b"later"
            await consumer.ack([Settlement(delivery)])
            await consumer.close()
        self.run(broker_factory, body)

    def test_publish_many_keeps_order(self, broker_factory: BrokerFactory) -> None:
        async def body(broker: Broker, queue: str) -> None:
            bodies = [f"m{i}".encode() for i in range(50)]
            await broker.publish_many([Outgoing(_ids(), queue, b) for b in bodies])
            consumer = self.consumer(broker, queue, prefetch=50)
            got = await _fetch(consumer, want=50)
            assert [d.body for d in got] == bodies
            await consumer.ack([Settlement(d) for d in got])
            await consumer.close()
        self.run(broker_factory, body)

    def test_hand_back_uncounted_keeps_the_count(self, broker_factory: BrokerFactory) -> None:
        async def body(broker: Broker, queue: str) -> None:
            await broker.publish(Outgoing(_ids(), queue, b"back"))
            consumer = self.consumer(broker, queue)
            (first,) = await _fetch(consumer)
            await consumer.requeue([first])
            (again,) = await _fetch(consumer)
            assert (again.body, again.delivery_count) == (b"back", 1)
            await consumer.requeue([again], counted=True)
            (third,) = await _fetch(consumer)
            assert third.delivery_count == 2
            await consumer.ack([Settlement(third)])
            await consumer.close()
        self.run(broker_factory, body)

    def test_close_hands_back_what_it_holds(self, broker_factory: BrokerFactory) -> None:
        async def body(broker: Broker, queue: str) -> None:
            await broker.publish(Outgoing(_ids(), queue, b"held"))
            first = self.consumer(broker, queue)
            (held,) = await _fetch(first)
            await first.close()
            second = self.consumer(broker, queue)
            (again,) = await _fetch(second)
            assert (again.body, again.delivery_count) == (b"held", held.delivery_count)
            await second.ack([Settlement(again)])
            await second.close()
        self.run(broker_factory, body)

    def test_a_held_message_goes_to_no_one_else(self, broker_factory: BrokerFactory) -> None:
        """While its holder lives and renews (past the lease), nobody else gets it."""
        async def body(broker: Broker, queue: str) -> None:
            await broker.publish(Outgoing(_ids(), queue, b"mine"))
            holder, other = self.consumer(broker, queue), self.consumer(broker, queue)
            (held,) = await _fetch(holder)
            deadline = time.monotonic() + self.lease * 1.5
            while time.monotonic() < deadline:
                await holder.renew([held])
                assert await other.fetch(1, min(self.lease / 3, 0.5)) == []
            await holder.ack([Settlement(held)])
            await holder.close()
            await other.close()
        self.run(broker_factory, body)

    def test_dead_letters_keep_body_and_reason(self, broker_factory: BrokerFactory) -> None:
        async def body(broker: Broker, queue: str) -> None:
            await broker.publish(Outgoing("kit-dead-1", queue, b"poison"))
            consumer = self.consumer(broker, queue)
            (delivery,) = await _fetch(consumer)
            await consumer.dead_letter([DeadItem(delivery, "it is poison", "kit-dead-1", "t")])
            (letter,) = await broker.dead_letters(queue)
            assert (letter.body, letter.reason, letter.task_id, letter.task) == (
                b"poison", "it is poison", "kit-dead-1", "t")
            assert await broker.requeue_dead(queue, [letter.ref]) == 1
            (back,) = await _fetch(consumer)
            assert back.body == b"poison"
            await consumer.dead_letter([DeadItem(back, "again")])
            assert await broker.purge_dead(queue) == 1
            assert await broker.dead_letters(queue) == []
            await consumer.close()
        self.run(broker_factory, body)

    def test_pause_holds_nothing_new_until_resume(self, broker_factory: BrokerFactory) -> None:
        async def body(broker: Broker, queue: str) -> None:
            consumer = self.consumer(broker, queue)
            assert await consumer.fetch(1, 0.2) == []  # started
            await consumer.pause()
            await broker.publish(Outgoing(_ids(), queue, b"later"))
            await asyncio.sleep(0.3)
            await consumer.resume()
            (delivery,) = await _fetch(consumer)
            assert (delivery.body, delivery.delivery_count) == (b"later", 1)
            await consumer.ack([Settlement(delivery)])
            await consumer.close()
        self.run(broker_factory, body)

    def test_delayed_delivery_is_never_early(self, broker_factory: BrokerFactory) -> None:
        async def body(broker: Broker, queue: str) -> None:
            eta = time.time() + 0.8
            await broker.publish(Outgoing(_ids(), queue, b"delayed", eta))
            consumer = self.consumer(broker, queue)
            assert await consumer.fetch(1, 0.4) == []
            (delivery,) = await _fetch(consumer)
            assert time.time() >= eta - 0.05
            assert delivery.body == b"delayed"
            await consumer.ack([Settlement(delivery)])
            await consumer.close()
        self.run(broker_factory, body)


class ResultBackendContract:
    """What handles and the worker rely on from a result backend (override
    ``backend_factory``; ``announce`` if ids must be known before records arrive)."""

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        raise NotImplementedError("override the backend_factory fixture")

    async def announce(self, backend: ResultBackend, task_id: str) -> None:
        """Called before records of ``task_id`` are stored (an RPC backend learns the
        ids it sent); nothing by default."""

    def run(self, factory: BackendFactory,
            body: Callable[[ResultBackend, str], Awaitable[None]]) -> None:
        async def go() -> None:
            backend = factory()
            task_id = f"kit-{_ids()}"
            await backend.connect()
            try:
                await self.announce(backend, task_id)
                await body(backend, task_id)
            finally:
                await backend.forget(task_id)
                await backend.close()
        _run(go())

    def test_first_final_writer_wins(self, backend_factory: BackendFactory) -> None:
        async def body(backend: ResultBackend, task_id: str) -> None:
            await backend.store(task_id, ResultRecord(TaskState.STARTED, task="t"))
            await backend.store(task_id, ResultRecord(TaskState.SUCCESS, 1, task="t"))
            await backend.store(task_id, ResultRecord(TaskState.FAILURE, None, "E", "late"))
            await backend.store(task_id, ResultRecord(TaskState.SUCCESS, 2, task="t"))
            record = await backend.get(task_id)
            assert record is not None
            assert (record.state, record.value) == (TaskState.SUCCESS, 1)
        self.run(backend_factory, body)

    def test_a_rejection_gives_way(self, backend_factory: BackendFactory) -> None:
        async def body(backend: ResultBackend, task_id: str) -> None:
            await backend.store(task_id, ResultRecord(TaskState.FAILURE, None, REJECTED, "x"))
            assert (await backend.wait(task_id, 5)).error_type == REJECTED
            await backend.store(task_id, ResultRecord(TaskState.SUCCESS, "ran"))
            record = await backend.get(task_id)
            assert record is not None
            assert record.value == "ran"
        self.run(backend_factory, body)

    def test_wait_is_notified_and_times_out(self, backend_factory: BackendFactory) -> None:
        async def body(backend: ResultBackend, task_id: str) -> None:
            with pytest.raises(ResultTimeout):
                await backend.wait(task_id, 0.2)
            waiter = asyncio.ensure_future(backend.wait(task_id, 10))
            await asyncio.sleep(0.2)
            await backend.store(task_id, ResultRecord(TaskState.RETRY, None, "E", "again"))
            await asyncio.sleep(0.1)
            assert not waiter.done()  # not final: still waiting
            await backend.store(task_id, ResultRecord(TaskState.SUCCESS, [1, "two"]))
            record = await waiter
            assert (record.state, record.value) == (TaskState.SUCCESS, [1, "two"])
        self.run(backend_factory, body)

    def test_forget(self, backend_factory: BackendFactory) -> None:
        async def body(backend: ResultBackend, task_id: str) -> None:
            await backend.store(task_id, ResultRecord(TaskState.SUCCESS, 1))
            await backend.forget(task_id)
            assert await backend.get(task_id) is None
        self.run(backend_factory, body)

    def test_records_expire(self, backend_factory: BackendFactory) -> None:
        async def body(backend: ResultBackend, task_id: str) -> None:
            backend.ttl = 0.3
            await backend.store(task_id, ResultRecord(TaskState.SUCCESS, 1))
            assert await backend.get(task_id) is not None
            await asyncio.sleep(0.8)
            assert await backend.get(task_id) is None
        self.run(backend_factory, body)
