"""The web dashboard (``pip install 'asyncq[dashboard]'``): ``asyncq dashboard APP`` or
mounted in an existing ASGI app::

    from starlette.routing import Mount
    from asyncq.dashboard import create_dashboard

    api.mount("/queue", create_dashboard(app))          # FastAPI / Starlette

Server-rendered HTML (no JavaScript build; a few lines of script refresh the overview
every 2 s): workers, queues with depths and rates, recent tasks with states and
durations, a task's detail, dead letters with reasons. Workers need ``--events``.

Read-only by default. ``actions=True`` with a ``token`` adds forms to requeue or purge
dead letters (and revoke, where the app has ``revoke``); each action needs the token
typed into its form. Arguments and results are shown only with ``show_args=True``.
Everything that comes from the broker is HTML-escaped, control characters made visible
and bounded.
"""

from __future__ import annotations

import hmac
import html
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from asyncq.dashboard import _render as r
from asyncq.dashboard._state import ClusterState
from asyncq.errors import DecodeError

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["create_dashboard"]


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


class _Views:
    def __init__(self, app: App, state: ClusterState, *, actions: bool, token: str | None,
                 show_args: bool) -> None:
        self.app = app
        self.state = state
        self.actions = actions
        self.token = token
        self.show_args = show_args

    async def overview(self, request: Request) -> Response:
        snapshot = await self.state.snapshot()
        body = r.sections(snapshot, _base(request))
        return HTMLResponse(r.page(f"app {self.app.name}", body, _base(request), live=True))

    async def fragment(self, request: Request) -> Response:
        return HTMLResponse(r.sections(await self.state.snapshot(), _base(request)))

    async def api(self, request: Request) -> Response:
        return JSONResponse(await self.state.snapshot())

    async def task(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        await self.state.start()
        seen = self.state.tasks.get(task_id, {})
        record = None
        try:
            record = await self.app.backend.get(self.app.result(task_id).id)
        except ValueError:
            return HTMLResponse(r.page("no such task", "<p>Not a task id.</p>",
                                       _base(request)), status_code=404)
        rows = [(k, v) for k, v in seen.items()]
        if record is not None:
            rows += [("recorded state", record.state), ("attempt", record.attempt),
                     ("error type", record.error_type), ("error", record.error_message)]
            if self.show_args:
                rows.append(("result", record.value))
        body = r.table(["field", "value"], ([r.e(k), r.e(v, 2000)] for k, v in rows),
                       "Nothing is known about this task (yet).")
        if record is not None and record.traceback:
            body += f"<h2>Traceback</h2><pre>{r.e(record.traceback, 20_000)}</pre>"
        body += self._revoke_form(request, task_id)
        return HTMLResponse(r.page(f"task {task_id}", body, _base(request)))

    async def dead(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        if queue not in self.state.queues():  # only queues the app or its workers use
            return HTMLResponse(r.page("no such queue", "<p>Unknown queue.</p>",
                                       _base(request)), status_code=404)
        await self.app.connect()
        letters = await self.app.broker.dead_letters(queue, 200)
        rows = []
        for d in letters:
            row = [r.e(d.ref), r.e(d.task), r.e(d.task_id), r.e(d.deliveries),
                   r.e(r.when(d.dead_at)), r.e(d.reason, 500)]
            if self.show_args:
                row.append(r.e(self._arguments(d.body), 500))
            rows.append(row)
        headers = ["ref", "task", "id", "deliveries", "dead at", "reason"]
        body = r.table([*headers, "arguments"] if self.show_args else headers, rows,
                       "No dead letters.")
        body += self._dead_forms(request, queue)
        return HTMLResponse(r.page(f"dead letters of {queue}", body, _base(request)))

    def _arguments(self, body: bytes) -> str:
        try:
            message = self.app.codec.decode(body)
        except DecodeError as exc:
            return f"(undecodable: {exc})"
        return f"args={list(message.args)!r} kwargs={dict(message.kwargs)!r}"

    # -- actions (only with actions=True and a token) -------------------------------------
    def _form(self, request: Request, path: str, label: str) -> str:
        return (f'<form method="post" action="{html.escape(_base(request) + path)}">'
                '<input type="password" name="token" placeholder="token" required> '
                f"<button>{r.e(label)}</button></form> ")

    def _dead_forms(self, request: Request, queue: str) -> str:
        if not self.actions:
            return '<p class="note">Read-only dashboard.</p>'
        q = quote(queue, safe="")
        return ("<h2>Actions</h2>" + self._form(request, f"/dead/{q}/requeue", "requeue all")
                + self._form(request, f"/dead/{q}/purge", "purge all"))

    def _revoke_form(self, request: Request, task_id: str) -> str:
        if not self.actions or not hasattr(self.app, "revoke"):
            return ""
        return self._form(request, f"/task/{quote(task_id, safe='')}/revoke", "revoke")

    async def _allowed(self, request: Request) -> bool:
        if not self.actions or not self.token:
            return False
        body = await request.body()  # a urlencoded form (no python-multipart needed)
        form = parse_qs(body[:4096].decode(errors="replace"))
        given = (form.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def requeue(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        if not await self._allowed(request) or queue not in self.state.queues():
            return Response("forbidden", status_code=403)
        refs = [d.ref for d in await self.app.broker.dead_letters(queue, 1_000_000)]
        await self.app.requeue_dead(queue, refs)
        return RedirectResponse(_base(request) + f"/dead/{quote(queue, safe='')}", 303)

    async def purge(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        if not await self._allowed(request) or queue not in self.state.queues():
            return Response("forbidden", status_code=403)
        await self.app.broker.purge_dead(queue)
        return RedirectResponse(_base(request) + f"/dead/{quote(queue, safe='')}", 303)

    async def revoke(self, request: Request) -> Response:
        revoke: Any = getattr(self.app, "revoke", None)
        if revoke is None or not await self._allowed(request):
            return Response("forbidden", status_code=403)
        await revoke(request.path_params["task_id"])
        return RedirectResponse(_base(request) + "/", 303)


def create_dashboard(app: App, *, actions: bool = False, token: str | None = None,
                     show_args: bool = False, keep: int = 500) -> Starlette:
    """A Starlette app showing ``app``'s workers, queues, tasks and dead letters."""
    if actions and not token:
        raise ValueError("dashboard actions need a token")
    state = ClusterState(app, keep=keep)
    views = _Views(app, state, actions=actions, token=token, show_args=show_args)
    routes = [
        Route("/", views.overview), Route("/fragment", views.fragment),
        Route("/api/state", views.api), Route("/task/{task_id}", views.task),
        Route("/dead/{queue}", views.dead),
        Route("/dead/{queue}/requeue", views.requeue, methods=["POST"]),
        Route("/dead/{queue}/purge", views.purge, methods=["POST"]),
        Route("/task/{task_id}/revoke", views.revoke, methods=["POST"]),
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        yield
        await state.aclose()

    return Starlette(routes=routes, lifespan=lifespan)
