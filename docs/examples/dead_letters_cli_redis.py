"""`asyncq dlq list / inspect / requeue / purge` against dead letters on Redis.

This module is also the app the commands load (`dead_letters_cli_redis:app`).
Needs Redis: $ASYNCQ_TEST_REDIS_URL, default redis://127.0.0.1:6379/0.
"""

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from asyncq import App, Worker

URL = os.environ.get("ASYNCQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
app = App("docs-dlq", broker=URL, result_ttl=60)

newer = App("docs-dlq", broker=URL, result_ttl=60)  # a producer with a task the worker lacks


@newer.task(name="reports.export")
async def export(report_id: int, email: str) -> None: ...


def asyncq_cli(*args: str) -> str:
    """What you would type as `asyncq ...` in the directory that holds this module."""
    done = subprocess.run([sys.executable, "-m", "asyncq", *args], capture_output=True,
                          text=True, timeout=30, check=True, cwd=Path(__file__).parent)
    return done.stdout


async def main() -> None:
    queue = f"docs-dlq-{uuid.uuid4().hex[:8]}"
    app_path = "dead_letters_cli_redis:app"
    async with app, newer:
        try:
            async with Worker(app, [queue]) as worker:
                for n in (1, 2):
                    await export.options(queue=queue).enqueue(n, email="ada@example.test")
                await worker.join()

            print(asyncq_cli("dlq", "list", app_path, "-Q", queue))
            first = (await app.broker.dead_letters(queue))[0].ref
            print(asyncq_cli("dlq", "inspect", app_path, "-Q", queue, first, "--args"))
            print(asyncq_cli("dlq", "requeue", app_path, "-Q", queue, first), end="")
            print("waiting on the queue again:", await app.broker.queue_size(queue))
            print(asyncq_cli("dlq", "purge", app_path, "-Q", queue, "--yes"), end="")
        finally:
            await app.broker.delete_queue(queue)


if __name__ == "__main__":
    asyncio.run(main())
