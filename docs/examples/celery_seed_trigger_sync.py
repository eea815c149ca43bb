"""Seeds 003 and 004: ``trigger.py``, a plain synchronous script, with the blocking client.

The Celery original::

    from tasks import add
    result = add.delay(4, 4)
    while not result.ready():
        time.sleep(1)
    print('task done: {0}'.format(result.get()))
    print(result.task_id)

Needs Redis ($ASYNCQ_TEST_REDIS_URL); the worker is
``asyncq worker seeds.trigger_tasks:app``, started here in the background.
"""

import time

from seeds.worker import running_worker


def trigger() -> None:
    from seeds.trigger_tasks import add, app

    with app.blocking() as client:  # its own event loop, in a thread
        result = client.enqueue(add, 4, 4)
        while not result.ready():
            time.sleep(0.1)
        print(f"task done: {result.get(timeout=10)}")
        print(len(result.id), "character id, state", result.state())


if __name__ == "__main__":
    with running_worker("seeds.trigger_tasks:app", "default"):
        trigger()
