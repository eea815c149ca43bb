"""Seed 000: the "pj" package (``pj/celery.py`` + ``pj/config.py``), ported.

Celery read ``CELERY_ROUTES`` from a config module so that ``add`` and ``subtract``
went to their own queues, and a worker ran ``celery -A pj worker -Q for_add``. Here the
configuration is the App's keyword arguments; the worker runs
``asyncq worker seeds.pj:app -Q for_add,for_subtract``.
"""

import os

from asyncq import App

app = App("pj", broker=os.environ.get("ASYNCQ_BROKER"),
          task_routes={"pj.tasks.add": {"queue": "for_add", "routing_key": "for_add"},
                       "pj.tasks.subtract": {"queue": "for_subtract",
                                             "routing_key": "for_subtract"}})


@app.task(name="pj.tasks.add")
async def add(x: int, y: int) -> int:
    return x + y


@app.task(name="pj.tasks.subtract")
async def subtract(x: int, y: int) -> int:
    return x - y
