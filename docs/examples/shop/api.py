"""The shop's web API: FastAPI sends work to asyncq and awaits the results.

From docs/examples (the directory that holds the `shop` package):

    uvicorn shop.api:api                    # memory://: a worker runs inside the app

    export ASYNCQ_BROKER=redis://localhost:6379/0
    asyncq worker shop.tasks:app &          # the worker in its own process
    uvicorn shop.api:api                    # the app sends to it

Then: curl -X POST 'localhost:8000/add?x=2&y=3'
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from asyncq import App, TaskState, Worker
from asyncq.contrib.fastapi import AsyncqApp, asyncq_lifespan
from shop.tasks import add, send_email
from shop.tasks import app as queue

router = APIRouter()


class Email(BaseModel):
    to: str
    body: str


@router.post("/add")
async def post_add(x: int, y: int) -> dict[str, object]:
    handle = await add.enqueue(x, y)  # returns once the message is durably queued
    return {"id": handle.id, "sum": await handle.get(timeout=10)}


@router.post("/emails", status_code=202)
async def post_email(email: Email) -> dict[str, str]:
    handle = await send_email.enqueue(email.to, email.body)
    return {"id": handle.id}  # the client asks GET /tasks/{id} later


@router.get("/tasks/{task_id}")
async def get_task(task_id: str, queue: AsyncqApp) -> dict[str, object]:
    record = await queue.result(task_id).info()  # a handle from an id alone
    if record is None:
        return {"state": TaskState.PENDING, "result": None}
    return {"state": record.state, "result": record.value}


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    # the app's own startup and shutdown work; asyncq_lifespan wraps it
    yield


def in_process_worker(app: App) -> Worker:
    """A worker inside the web app: memory:// has no other (development and tests)."""
    return Worker(app, concurrency=10, fetch_timeout=0.1)


def create_api(*, run_worker: bool | None = None) -> FastAPI:
    """The app; with ``run_worker`` (default: on memory://) a worker runs inside it."""
    if run_worker is None:
        run_worker = queue.broker.url.startswith("memory:")
    worker = in_process_worker if run_worker else None
    api = FastAPI(title="shop", lifespan=asyncq_lifespan(queue, lifespan, worker=worker))
    api.include_router(router)
    return api


api = create_api()
