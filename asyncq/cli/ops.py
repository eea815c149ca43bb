"""Operator commands: ``status``, ``queues``, ``purge``, ``result`` (and ``--version``).

Everything a broker or a worker says is printed through :func:`literal` (rich markup
escaped, control characters visible, bounded); ``--json`` prints JSON instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from asyncq.app import App
from asyncq.cli._common import AppPath, fail, load_or_fail, run_on
from asyncq.cli._literal import dump_json, literal
from asyncq.cli._text import LazyConsole

__all__ = ["Json", "Timeout", "purge", "queues", "register", "result", "run_with", "status"]

T = TypeVar("T")

console = LazyConsole(highlight=False)

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Timeout = Annotated[float, typer.Option("--timeout", min=0.05,
                                        help="Seconds to collect workers' replies.")]
QueuesOpt = Annotated[str | None, typer.Option(
    "-Q", "--queues", help="Comma-separated queues (default: every queue a task uses).")]


def run_with(app_path: str, action: Callable[[App], Awaitable[T]]) -> T:
    """Load the app, connect, run ``action``; errors end the command with one line."""
    return run_on(load_or_fail(app_path), action)


def _queues_of(app: App, queues: str | None) -> list[str]:
    if queues:
        return [q.strip() for q in queues.split(",") if q.strip()]
    return sorted({app.queue_for(task) for task in app.tasks.values()} or {app.default_queue})


def _age(ts: Any) -> str:
    try:
        return f"{max(0.0, time.time() - float(ts)):.1f}s ago"
    except (TypeError, ValueError):
        return "?"


# -- status -----------------------------------------------------------------------------
async def gather_status(app: App, timeout: float) -> list[dict[str, Any]]:
    """Workers from the registry (where kept) merged with live ``stats`` replies."""
    from asyncq.events import bus_for, is_lost

    recorded = await bus_for(app).workers()
    live = await app.control.broadcast("stats", timeout=timeout)
    rows: dict[str, dict[str, Any]] = {}
    for info in recorded or []:
        name = str(info.get("worker"))
        rows[name] = {**info, "state": "lost" if is_lost(info) else "online"}
    for name, stats in live.items():
        row = rows.setdefault(name, {"worker": name})
        if isinstance(stats, dict):
            row.update({k: stats[k] for k in ("queues", "concurrency", "running", "processed")
                        if k in stats})
        row["state"] = "online"
        row["answered"] = True
    return sorted(rows.values(), key=lambda r: str(r.get("worker")))


def status(app_path: AppPath, json_: Json = False, timeout: Timeout = 1.0) -> None:
    """Workers online (and lost: silent for 3 heartbeats).

    Name, host, pid, queues, concurrency, running, processed, uptime, last heartbeat.
    """
    rows = run_with(app_path, lambda app: gather_status(app, timeout))
    if json_:
        typer.echo(dump_json(rows))
        return
    from rich.table import Table  # (rich: imported by the commands that print with it)

    table = Table("worker", "state", "host", "pid", "queues", "conc.", "running",
                  "processed", "uptime", "heartbeat")
    for r in rows:
        queues = ",".join(map(str, r.get("queues") or []))
        table.add_row(*(literal(v, 80) for v in (
            r.get("worker"), r.get("state"), r.get("host", "?"), r.get("pid", "?"), queues,
            r.get("concurrency"), r.get("running"), r.get("processed"),
            f"{float(r.get('uptime') or 0):.0f}s", _age(r["ts"]) if "ts" in r else "-")))
    console.print(table)
    lost = sum(1 for r in rows if r.get("state") == "lost")
    console.print(f"{len(rows) - lost} online, {lost} lost")


# -- queues -----------------------------------------------------------------------------
def queues(app_path: AppPath, names: QueuesOpt = None, json_: Json = False) -> None:
    """Per queue: waiting, scheduled, in flight, dead letters, consumers.

    "-" where the broker cannot say.
    """
    from asyncq.events.queues import queue_depths

    depths = run_with(app_path, lambda app: queue_depths(app, _queues_of(app, names)))
    if json_:
        typer.echo(dump_json({q: d.as_dict() for q, d in depths.items()}))
        return
    from rich.table import Table  # (rich: imported by the commands that print with it)

    table = Table("queue", "waiting", "scheduled", "in flight", "dead", "consumers")
    for queue, d in depths.items():
        table.add_row(literal(queue), *("-" if v is None else str(v) for v in (
            d.waiting, d.scheduled, d.in_flight, d.dead, d.consumers)))
    console.print(table)


# -- purge ------------------------------------------------------------------------------
def purge(app_path: AppPath,
          queue: Annotated[str, typer.Option("-Q", "--queue", help="The queue to empty.")],
          yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
          json_: Json = False) -> None:
    """Delete the messages waiting in a queue.

    Its delayed ones too; running and dead-lettered messages are kept.
    """
    from asyncq.events.queues import purge_queue

    if not yes:
        typer.confirm(f"Delete every waiting message of {queue!r}?", abort=True)
    removed = run_with(app_path, lambda app: purge_queue(app, queue))
    if json_:
        typer.echo(dump_json({"queue": queue, "purged": removed}))
    else:
        console.print(f"purged {removed} message(s) from {literal(queue)}")


# -- result -----------------------------------------------------------------------------
def result(app_path: AppPath,
           task_id: Annotated[str, typer.Argument(help="The task id.")],
           traceback: Annotated[bool, typer.Option("--traceback",
                                                   help="Also print the traceback.")] = False,
           json_: Json = False) -> None:
    """A task's state and result (or error)."""

    async def look(app: App) -> dict[str, Any]:
        try:
            handle = app.result(task_id)
        except ValueError as exc:
            raise fail(str(exc)) from None
        record = await app.backend.get(handle.id)
        if record is None:
            return {"id": task_id, "state": "PENDING"}
        return {"id": task_id, "state": str(record.state), "task": record.task,
                "result": record.value, "error_type": record.error_type,
                "error": record.error_message, "attempt": record.attempt,
                "finished_at": record.finished_at,
                **({"traceback": record.traceback} if traceback else {})}

    data = run_with(app_path, look)
    if json_:
        typer.echo(dump_json(data))
        return
    for key, value in data.items():
        if value is not None:
            limit = 20_000 if key == "traceback" else 2_000
            console.print(f"{key:>12}: {literal(value, limit)}")


def version_callback(value: bool) -> None:
    if value:
        from asyncq import __version__

        typer.echo(f"asyncq {__version__}")
        raise typer.Exit()


def main_options(
    version: Annotated[bool, typer.Option("--version", callback=version_callback,
                                          is_eager=True, help="Print the version.")] = False,
) -> None:
    """asyncq: an asyncio-native task queue."""


def register(cli: typer.Typer) -> None:
    """Add the operator commands to ``cli``."""
    from asyncq.cli import live

    cli.callback()(main_options)
    for command in (status, queues, purge, result, live.inspect, live.control,
                    live.events):
        cli.command()(command)
    cli.command()(live.dashboard)
