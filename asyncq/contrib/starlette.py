"""asyncq in a Starlette app: connect the App in the lifespan, find it from a request.

::

    api = Starlette(routes=..., lifespan=asyncq_lifespan(queue, my_lifespan))

:func:`asyncq_lifespan` wraps an app's own lifespan (if it has one): the App is
connected before that lifespan starts and closed after it ends, and the lifespan
state gets the App under ``"asyncq"``, where :func:`asyncq_app` finds it.

The lifespan must run for requests to see the App. Starlette's ``TestClient`` runs it
in ``with TestClient(app):``; ``httpx.ASGITransport`` does not, so wrap the app in
``asgi_lifespan.LifespanManager`` (docs/guides/fastapi.md shows both).

Event loops: ``TestClient`` runs the app on a loop of its own in a thread. A worker
started by a test fixture on the test's loop does not run while a request waits (the
test's loop is blocked in the client call), so a request that awaits a result times
out. Run the worker inside the app instead (``worker=Worker``) or in its own process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

try:
    from starlette.requests import HTTPConnection
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("asyncq.contrib.starlette needs Starlette: "
                      "pip install 'asyncq[fastapi]'") from exc

from asyncq.app import App
from asyncq.errors import ConfigurationError
from asyncq.worker import Worker

__all__ = ["STATE_KEY", "asyncq_app", "asyncq_lifespan"]

#: The key of the App in the lifespan state (``request.state.asyncq``).
STATE_KEY = "asyncq"

AppT = TypeVar("AppT")

#: An app's own lifespan: ``async with lifespan(app) as state`` (state: a mapping or None).
OwnLifespan = Callable[[AppT], AbstractAsyncContextManager[Mapping[str, Any] | None]]


def asyncq_lifespan(
    queue: App,
    lifespan: OwnLifespan[AppT] | None = None,
    *,
    worker: Callable[[App], Worker] | None = None,
) -> Callable[[AppT], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan that connects ``queue`` around ``lifespan`` (the app's own, if any).

    On startup: connect ``queue``, start ``worker(queue)`` when given (for example
    ``worker=Worker``, or ``lambda q: Worker(q, concurrency=10)``), then enter
    ``lifespan``. On shutdown the same in reverse: the worker finishes its running
    tasks before the App closes. The state yielded to requests is ``lifespan``'s
    state plus ``{"asyncq": queue}``.

    An in-process worker suits development and tests (it is the only worker that
    can reach ``memory://``); in production run ``asyncq worker`` processes.
    """

    @asynccontextmanager
    async def combined(asgi_app: AppT) -> AsyncIterator[dict[str, Any]]:
        async with queue, AsyncExitStack() as stack:
            if worker is not None:
                await stack.enter_async_context(worker(queue))
            state: dict[str, Any] = {}
            if lifespan is not None:
                own = await stack.enter_async_context(lifespan(asgi_app))
                state.update(own or {})
            state[STATE_KEY] = queue
            yield state

    return combined


def asyncq_app(conn: HTTPConnection) -> App:
    """The App that :func:`asyncq_lifespan` connected, for a request or a websocket.

    Raises :class:`~asyncq.ConfigurationError` when the lifespan did not run.
    """
    found = getattr(conn.state, STATE_KEY, None)
    if not isinstance(found, App):
        raise ConfigurationError(
            "no asyncq App in the request state: give the app "
            "lifespan=asyncq_lifespan(queue), and make the lifespan run (with "
            "httpx.ASGITransport, wrap the app in asgi_lifespan.LifespanManager)")
    return found
