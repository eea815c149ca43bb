"""Seeds 003 and 004: ``trigger.py`` in async code (no polling: awaiting waits).

Needs Redis ($ASYNCQ_TEST_REDIS_URL); see celery_seed_trigger_sync.py.
"""

import asyncio

from seeds.worker import running_worker


async def trigger() -> None:
    from seeds.trigger_tasks import add, app

    async with app:
        result = await add.enqueue(4, 4)
        print(f"task done: {await result.get(timeout=10)}")
        print(len(result.id), "character id, state", await result.state())


if __name__ == "__main__":
    with running_worker("seeds.trigger_tasks:app", "default"):
        asyncio.run(trigger())
