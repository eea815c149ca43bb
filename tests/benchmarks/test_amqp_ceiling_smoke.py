"""amqp_ceiling.py cannot rot: a small run gives the bare and the asyncq rate for each
storage, and the bare connection's messages are asyncq's (a worker runs them)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import asyncq
from tests._modules import ROOT, load_file


def test_the_ceiling_benchmark_runs(amqp_url: str, tmp_path: Path) -> None:
    out = tmp_path / "ceiling.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "amqp_ceiling.py"), "--broker", amqp_url,
         "--storage", "default,lazy+v2", "--n", "1500", "--rounds", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT / "benchmarks")
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert [row["storage"] for row in figures["summary"]] == ["default", "lazy+v2"]
    for row in figures["summary"]:
        assert row["bare_per_s"] > 0
        assert row["asyncq_per_s"] > 0
        assert row["asyncq_vs_bare"] == row["asyncq_per_s"] / row["bare_per_s"]
    assert "guest:guest" not in out.read_text()


def test_an_unknown_storage_is_refused(amqp_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "amqp_ceiling.py"), "--broker", amqp_url,
         "--storage", "default,fast"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT / "benchmarks")
    assert result.returncode == 2
    assert "unknown --storage ['fast']" in result.stderr


async def test_what_the_bare_connection_writes_is_what_asyncq_sends(
        amqp_url: str, unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The ceiling is measured on asyncq's own messages: a worker runs them."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its imports of its neighbours
    ceiling = load_file("amqp_ceiling", "benchmarks/amqp_ceiling.py")
    app = asyncq.App(unique("app"), broker=amqp_url)
    queue = unique("ceiling")

    @app.task(queue=queue)
    async def double(i: int) -> int:
        return 2 * i

    async with app:
        bare = await ceiling.Bare.open(amqp_url)
        try:
            chunks, handles = await ceiling.frames_for(app, double, 1203, bare.frame_max)
            assert [count for count, _ in chunks] == [1000, 203]
            await bare.publish(chunks)
        finally:
            await bare.close()
        assert await app.broker.queue_size(queue) == 1203
        async with asyncq.Worker(app, concurrency=50, queues=[queue]):
            assert [await h.get(timeout=30) for h in handles] == [2 * i for i in range(1203)]
        await app.broker.delete_queue(queue)
