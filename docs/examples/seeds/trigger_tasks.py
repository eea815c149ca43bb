"""Seeds 003 and 004: the smallest Celery app, ported (``tasks.py``)::

    app = Celery("tasks", broker=broker, backend=backend)

    @app.task
    def add(x, y):
        return x + y
"""

import os

from asyncq import App

app = App("tasks", broker=os.environ.get("ASYNCQ_BROKER"))  # results: the same Redis


@app.task(name="tasks.add")
async def add(x: int, y: int) -> int:
    return x + y
