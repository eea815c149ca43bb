"""Seed 000: the "pj" project's client in async code. Needs Redis ($ASYNCQ_TEST_REDIS_URL)."""

import asyncio

from seeds.worker import running_worker

from asyncq import group


async def client_calls() -> None:
    from seeds.pj import add, app, subtract

    async with app:
        print("add:", await (await add.enqueue(2, 2)).get(timeout=10))
        print("subtract:", await (await subtract.enqueue(8, 3)).get(timeout=10))
        parallel = await group(add.s(i, i) for i in range(10)).enqueue()
        print("group:", await parallel.get(timeout=10))
        print("again by id:", (await app.result(parallel.id).get(timeout=10))[-1])


if __name__ == "__main__":
    with running_worker("seeds.pj:app", "for_add,for_subtract"):
        asyncio.run(client_calls())
