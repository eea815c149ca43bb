"""App's broker and backend: code first, then ASYNCQ_BROKER / ASYNCQ_BACKEND, then defaults."""

from __future__ import annotations

import pytest

from asyncq import App
from asyncq.brokers.memory import MemoryBroker
from asyncq.brokers.redis import RedisBroker
from asyncq.results.memory import MemoryResultBackend
from asyncq.results.redis import RedisResultBackend


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCQ_BROKER", raising=False)
    monkeypatch.delenv("ASYNCQ_BACKEND", raising=False)


def test_defaults_are_memory() -> None:
    app = App("shop")
    assert isinstance(app.broker, MemoryBroker)
    assert isinstance(app.backend, MemoryResultBackend)


def test_environment_gives_broker_and_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCQ_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("ASYNCQ_BACKEND", "memory://results")
    app = App("shop")
    assert isinstance(app.broker, RedisBroker)
    assert isinstance(app.backend, MemoryResultBackend)
    assert app.backend.url == "memory://results"


def test_backend_follows_the_broker_when_only_the_broker_is_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCQ_BROKER", "redis://127.0.0.1:6379/3")
    app = App("shop")
    assert isinstance(app.backend, RedisResultBackend)
    assert app.backend.url == "redis://127.0.0.1:6379/3"


def test_code_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCQ_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("ASYNCQ_BACKEND", "redis://127.0.0.1:6379/1")
    app = App("shop", broker="memory://a", backend="memory://b")
    assert (app.broker.url, app.backend.url) == ("memory://a", "memory://b")
    assert isinstance(app.broker, MemoryBroker)
    assert isinstance(app.backend, MemoryResultBackend)
