"""A broker of your own: register its scheme, use it from an App, run the conformance kit.

The toy broker here starts from asyncq's reference implementation, the in-memory broker
(asyncq/brokers/memory.py, under 200 lines), and only counts what it publishes; a real
one implements the same methods against its server.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import asyncq
from asyncq.brokers import Outgoing, register_broker
from asyncq.brokers.memory import MemoryBroker


class ToyBroker(MemoryBroker):
    """Queues in this process, counting every message published."""

    published = 0

    async def publish(self, message: Outgoing) -> None:
        ToyBroker.published += 1
        await super().publish(message)

    def default_backend_url(self) -> str:
        return "memory://toy-results"  # where results go when the App names no backend


# one line: the scheme, and where the class is (imported on first use)
register_broker(["toy"], f"{__name__}:ToyBroker")

app = asyncq.App("toys", broker="toy://shelf")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


async def main() -> None:
    async with app, asyncq.Worker(app):
        print("add on toy://:", await (await add.enqueue(2, 3)))
    print("published:", ToyBroker.published)


KIT = '''
import pytest
from asyncq.testing.contract import BrokerContract, ResultBackendContract
from asyncq.results.memory import MemoryResultBackend
from writing_a_broker import ToyBroker


class TestToyBroker(BrokerContract):
    @pytest.fixture
    def broker_factory(self):
        return lambda: ToyBroker("toy://kit")


class TestMemoryResults(ResultBackendContract):
    @pytest.fixture
    def backend_factory(self):
        return lambda: MemoryResultBackend("memory://kit")
'''


def run_the_kit() -> None:
    """Run the conformance kit on the toy broker, as a broker's own test suite would."""
    with tempfile.TemporaryDirectory() as folder:
        test = Path(folder) / "test_toy_broker.py"
        test.write_text(textwrap.dedent(KIT))
        here = str(Path(__file__).resolve().parent)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "/dev/null",
             "--rootdir", folder, str(test)],
            capture_output=True, text=True, check=False, cwd=folder,
            env={"PYTHONPATH": here, "PATH": ""})
        print("kit:", result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    asyncio.run(main())
    run_the_kit()
