"""Operator commands that talk to running workers: ``inspect``, ``control``, ``events``,
``dashboard``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from asyncq.app import App
from asyncq.cli._common import AppPath, fail, load_or_fail, run_async
from asyncq.cli._literal import dump_json, literal
from asyncq.cli.ops import Json, Timeout, console, run_with
from asyncq.errors import AsyncqError

__all__ = ["control", "dashboard", "events", "inspect"]

WorkerOpt = Annotated[list[str] | None, typer.Option(
    "--worker", "-d", help="Only this worker (pid@host); repeat for several.")]
INSPECT = ("active", "reserved", "scheduled", "registered", "stats", "ping")


def _print_replies(replies: dict[str, Any], json_: bool) -> None:
    if json_:
        typer.echo(dump_json(replies))
        return
    if not replies:
        console.print("no worker replied (are workers running with --events?)")
    for worker, reply in sorted(replies.items()):
        console.print(f"[bold]{literal(worker)}[/bold]")
        if isinstance(reply, list):
            if not reply:
                console.print("  (none)")
            for item in reply:
                console.print(f"  {_line(item)}")
        elif isinstance(reply, dict):
            for key, value in reply.items():
                console.print(f"  {literal(key)}: {literal(value, 500)}")
        else:
            console.print(f"  {literal(reply, 500)}")


def _line(item: Any) -> str:
    if isinstance(item, dict):
        return "  ".join(f"{literal(k)}={literal(v)}" for k, v in item.items())
    return literal(item)


def inspect(app_path: AppPath,
            what: Annotated[str, typer.Argument(help="|".join(INSPECT))],
            worker: WorkerOpt = None, timeout: Timeout = 1.0, json_: Json = False) -> None:
    """Ask running workers: active, reserved, scheduled, registered, stats or ping."""
    if what not in INSPECT:
        raise fail(f"inspect takes one of {', '.join(INSPECT)}, not {what!r}")
    replies = run_with(app_path, lambda app: app.control.broadcast(
        what, destination=worker, timeout=timeout))
    _print_replies(replies, json_)


def control(app_path: AppPath,
            action: Annotated[str, typer.Argument(
                help="ping | shutdown | rate-limit TASK RATE | cancel-consumer QUEUE | "
                "add-consumer QUEUE")],
            args: Annotated[list[str] | None, typer.Argument(help="The action's arguments.")]
            = None,
            worker: WorkerOpt = None, timeout: Timeout = 1.0, json_: Json = False) -> None:
    """Tell running workers: ping, shutdown, rate-limit TASK 10/s (or off),
    cancel-consumer QUEUE, add-consumer QUEUE."""
    given = list(args or [])
    if action not in SHAPES:
        raise fail(f"control takes one of {', '.join(SHAPES)}, not {action!r}")
    command, names = SHAPES[action]
    if len(given) != len(names):
        raise fail(f"control {action} takes {len(names)} argument(s): "
                   f"{' '.join(n.upper() for n in names) or 'none'}")

    async def send(app: App) -> dict[str, Any]:
        kw: dict[str, Any] = {"destination": worker, "timeout": timeout}
        if command == "rate_limit":  # stored on the server too, for workers started later
            return await app.control.rate_limit(given[0], given[1], **kw)
        return await app.control.broadcast(command, dict(zip(names, given, strict=True)), **kw)

    _print_replies(run_with(app_path, send), json_)


#: ``asyncq control`` actions: the control command and its arguments' names.
SHAPES: dict[str, tuple[str, list[str]]] = {
    "ping": ("ping", []), "shutdown": ("shutdown", []),
    "rate-limit": ("rate_limit", ["task", "rate"]),
    "cancel-consumer": ("cancel_consumer", ["queue"]),
    "add-consumer": ("add_consumer", ["queue"])}


def _short(value: Any) -> Any:
    return f"{value:.4f}" if isinstance(value, float) else value


def _event_line(event: dict[str, Any]) -> str:
    try:
        stamp = dt.datetime.fromtimestamp(float(event.get("ts", 0)), dt.UTC)
        when = stamp.strftime("%H:%M:%S.%f")[:-3]
    except (TypeError, ValueError, OverflowError):
        when = "?"
    kind = str(event.get("type", "?"))
    keys = ("task", "id", "queue", "attempt", "runtime", "delay", "error") \
        if kind.startswith("task-") else ("running", "processed", "queues")
    extra = "  ".join(f"{k}={literal(_short(event[k]), 300)}" for k in keys if k in event)
    return f"{when} {literal(kind, 40)} {literal(event.get('worker'), 80)} {extra}"


def events(app_path: AppPath,
           follow: Annotated[bool, typer.Option("--follow", "-f",
                                                help="Keep printing new events.")] = False,
           history: Annotated[int, typer.Option(
               "--history", min=0, help="Recent events to print first (not on RabbitMQ).")]
           = 20,
           heartbeats: Annotated[bool, typer.Option(
               "--heartbeats", help="Also worker-heartbeat events (left out by default).")]
           = False,
           json_: Json = False) -> None:
    """Print recent task and worker events; --follow for a live tail (Ctrl-C ends it)."""
    app = load_or_fail(app_path)

    def show(event: dict[str, Any]) -> None:
        if heartbeats or event.get("type") != "worker-heartbeat":
            typer.echo(json.dumps(event, default=str, sort_keys=True)) if json_ \
                else console.print(_event_line(event))

    try:
        run_async(_tail(app, follow, history, heartbeats, show))
    except AsyncqError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


async def _tail(app: App, follow: bool, history: int, heartbeats: bool,
                show: Callable[[dict[str, Any]], None]) -> None:
    from asyncq.events import bus_for

    async with app:
        bus = bus_for(app)
        if not follow:
            recent = [e for e in await bus.recent(history * 10)
                      if heartbeats or e.get("type") != "worker-heartbeat"]
            for event in recent[-history:] if history else []:
                show(event)
            return
        async for event in bus.follow(history):
            show(event)


def dashboard(app_path: AppPath,
              port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
              host: Annotated[str, typer.Option("--host", help="Address to bind.")]
              = "127.0.0.1",
              actions: Annotated[bool, typer.Option(
                  "--actions", help="Allow requeue/purge of dead letters and revoke; needs "
                  "ASYNCQ_DASHBOARD_TOKEN.")] = False,
              show_args: Annotated[bool, typer.Option(
                  "--show-args", help="Show task arguments (may hold personal data).")]
              = False,
              json_: Annotated[bool, typer.Option(
                  "--json", help="Print the address as one JSON line on stderr.")]
              = False) -> None:
    """Serve the web dashboard (read-only unless --actions)."""
    import os

    app = load_or_fail(app_path)
    token = os.environ.get("ASYNCQ_DASHBOARD_TOKEN")
    if actions and not token:
        raise fail("--actions needs a token in ASYNCQ_DASHBOARD_TOKEN")
    try:
        import uvicorn

        from asyncq.dashboard import create_dashboard
    except ImportError:
        raise fail("the dashboard needs starlette and uvicorn: "
                   "pip install 'asyncq[dashboard]'") from None
    web = create_dashboard(app, actions=actions, token=token, show_args=show_args)
    url = f"http://{host}:{port}/"
    typer.echo(json.dumps({"dashboard": url, "actions": actions, "show_args": show_args})
               if json_ else f"asyncq dashboard on {url}", err=True)
    # an open live-update connection must not hold a SIGTERM up for ever
    uvicorn.run(web, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


