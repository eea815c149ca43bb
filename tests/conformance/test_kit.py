"""asyncq's own brokers and result backends through the public conformance kit
(asyncq.testing.contract), each on its own: memory, Redis (RESP3 and RESP2), RabbitMQ
(classic and quorum); memory, Redis and RPC results."""

from __future__ import annotations

import pytest

from asyncq.brokers import Broker, broker_class
from asyncq.brokers.amqp import AmqpBroker
from asyncq.results import ResultBackend
from asyncq.results.memory import MemoryResultBackend
from asyncq.results.redis import RedisResultBackend
from asyncq.results.rpc import RpcResultBackend
from asyncq.testing.contract import BrokerContract, ResultBackendContract

KINDS = ["memory", "redis", "redis-resp2", "amqp-classic", "amqp-quorum"]


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


class TestBrokers(BrokerContract):
    @pytest.fixture(params=KINDS)
    def broker_factory(self, request: pytest.FixtureRequest) -> object:
        kind = str(request.param)
        if kind == "memory":
            return lambda: broker_class("memory://kit")("memory://kit")
        if kind.startswith("redis"):
            url = str(request.getfixturevalue("redis_url"))
            url = _with_query(url, "protocol=2") if kind == "redis-resp2" else url
            return lambda: broker_class(url)(url)
        url = str(request.getfixturevalue("amqp_url"))
        quorum = kind == "amqp-quorum"
        return lambda: AmqpBroker(url, quorum=quorum)


class TestResultBackends(ResultBackendContract):
    @pytest.fixture(params=["memory", "redis", "rpc"])
    def backend_factory(self, request: pytest.FixtureRequest) -> object:
        kind = str(request.param)
        if kind == "memory":
            return lambda: MemoryResultBackend("memory://kit-results")
        if kind == "redis":
            url = str(request.getfixturevalue("redis_url"))
            return lambda: RedisResultBackend(url)
        url = str(request.getfixturevalue("amqp_url"))
        return lambda: _rpc(url)

    async def announce(self, backend: ResultBackend, task_id: str) -> None:
        if isinstance(backend, RpcResultBackend):
            backend._expect(task_id)  # what publishing a task with our reply address does


class _OwnBroker(RpcResultBackend):
    """RPC results over a broker of their own, closed with them."""

    async def close(self) -> None:
        await super().close()
        assert isinstance(self.transport, AmqpBroker)
        await self.transport.close()


def _rpc(url: str) -> ResultBackend:
    broker: Broker = AmqpBroker(url)
    return _OwnBroker.create("rpc://", ttl=60, max_size=1 << 20, broker=broker)
