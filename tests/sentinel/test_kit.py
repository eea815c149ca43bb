"""The conformance kit on Redis behind Sentinel, with ``wait_replicas=1`` (the same
code as without, plus one ``WAIT`` per batch of writes)."""

from __future__ import annotations

import pytest

from asyncq.brokers.redis import RedisBroker
from asyncq.results.redis import RedisResultBackend
from asyncq.testing.contract import BrokerContract, ResultBackendContract
from tests._servers.sentinel import SentinelGroup

QUERY = "wait_replicas=1"


class TestSentinelBroker(BrokerContract):
    @pytest.fixture
    def broker_factory(self, sentinel_group: SentinelGroup) -> object:
        url = sentinel_group.url(query=QUERY)
        return lambda: RedisBroker(url)


class TestSentinelResults(ResultBackendContract):
    @pytest.fixture
    def backend_factory(self, sentinel_group: SentinelGroup) -> object:
        url = sentinel_group.url(query=QUERY)
        return lambda: RedisResultBackend(url)
