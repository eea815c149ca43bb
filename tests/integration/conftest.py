from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kill_live_workers

REAL_BROKERS = ["redis", "amqp"]


@pytest.fixture(params=REAL_BROKERS)
def real_broker(request: pytest.FixtureRequest) -> str:
    fixture = "redis_url" if request.param == "redis" else "amqp_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def worker_env(real_broker: str, tasks_dir: Path, request: pytest.FixtureRequest
               ) -> Iterator[dict[str, str]]:
    queue = f"it-{uuid.uuid4().hex[:10]}"
    if real_broker.startswith("redis"):
        request.getfixturevalue("redis_cleanup")(queue)
    return {"T_APP": f"it{uuid.uuid4().hex[:6]}", "T_BROKER": real_broker, "T_QUEUE": queue,
           "T_LEDGER": str(tasks_dir / "ledger.txt")}


@pytest.fixture
async def producer(worker_env: dict[str, str], tasks_dir: Path,
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The same tasks module the worker runs, imported here as the producer."""
    for key, value in worker_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(tasks_dir))
    sys.modules.pop("wtasks", None)
    module = importlib.import_module("wtasks")
    async with module.app:
        yield module
        kill_live_workers()
        await module.app.broker.delete_queue(worker_env["T_QUEUE"])
    sys.modules.pop("wtasks", None)


def ledger(env: dict[str, str]) -> list[tuple[str, int, int]]:
    path = Path(env["T_LEDGER"])
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(event, int(n), int(pid)) for event, n, pid in rows]


def count(env: dict[str, str], event: str, n: int) -> int:
    return sum(1 for e, m, _ in ledger(env) if e == event and m == n)

