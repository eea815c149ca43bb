"""Seed 000: the "pj" project's client, synchronous: routed tasks and a group.

In Celery: ``add.delay(2, 2)`` went to queue for_add, ``subtract.delay(8, 3)`` to
for_subtract (CELERY_ROUTES), and ``group(...)`` ran tasks in parallel. Needs Redis
($ASYNCQ_TEST_REDIS_URL); the worker is
``asyncq worker seeds.pj:app -Q for_add,for_subtract``.
"""

from seeds.worker import running_worker

from asyncq import group


def client_calls() -> None:
    from seeds.pj import add, app, subtract

    with app.blocking() as client:
        print("add:", client.enqueue(add, 2, 2).get(timeout=10))
        print("subtract:", client.enqueue(subtract, 8, 3).get(timeout=10))
        parallel = client.enqueue(group(add.s(i, i) for i in range(10)))
        print("group:", parallel.get(timeout=10))
        print("again by id:", client.result(parallel.id).get(timeout=10)[-1])


if __name__ == "__main__":
    with running_worker("seeds.pj:app", "for_add,for_subtract"):
        client_calls()
