"""asyncq in a FastAPI app: the lifespan of :mod:`asyncq.contrib.starlette` and a dependency.

::

    from asyncq.contrib.fastapi import AsyncqApp, asyncq_lifespan

    api = FastAPI(lifespan=asyncq_lifespan(queue, my_lifespan))

    @api.get("/tasks/{task_id}")
    async def task_state(task_id: str, queue: AsyncqApp) -> dict[str, str]:
        return {"state": (await queue.result(task_id).state()).value}

docs/guides/fastapi.md has the whole example and how to test it.
"""

from __future__ import annotations

from typing import Annotated

try:
    from fastapi import Depends
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("asyncq.contrib.fastapi needs FastAPI: "
                      "pip install 'asyncq[fastapi]'") from exc

from asyncq.app import App
from asyncq.contrib.starlette import STATE_KEY, asyncq_app, asyncq_lifespan

__all__ = ["STATE_KEY", "AsyncqApp", "asyncq_app", "asyncq_lifespan"]

#: A route parameter typed ``AsyncqApp`` gets the App the lifespan connected.
AsyncqApp = Annotated[App, Depends(asyncq_app)]
