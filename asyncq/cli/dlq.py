"""``asyncq dlq``: list, inspect, requeue and purge dead letters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from asyncq.app import App
from asyncq.brokers import DeadLetter
from asyncq.cli._common import AppPath, fail, load_or_fail, run_async
from asyncq.errors import AsyncqError, DecodeError

__all__ = ["dlq"]

T = TypeVar("T")

dlq = typer.Typer(help="Dead letters: list, inspect, requeue, purge.", no_args_is_help=True)
console = Console(width=None if Console().is_terminal else 160)

Queue = Annotated[str, typer.Option("-Q", "--queue", help="The queue whose dead letters to use.")]


def _run(app_path: str, action: Callable[[App], Awaitable[T]]) -> T:
    app = load_or_fail(app_path)

    async def go() -> T:
        async with app:
            return await action(app)

    try:
        return run_async(go())
    except AsyncqError as exc:
        raise fail(str(exc)) from None


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@dlq.command("list")
def list_(app_path: AppPath, queue: Queue,
          limit: Annotated[int, typer.Option(help="Most letters to show.")] = 100) -> None:
    """List dead letters: reference, task, id, reason, deliveries, when."""
    letters = _run(app_path, lambda app: app.broker.dead_letters(queue, limit))
    table = Table("ref", "task", "id", "deliveries", "dead at (UTC)", "reason")
    for column in table.columns[:5]:
        column.no_wrap = True
    for d in letters:
        table.add_row(d.ref, d.task or "?", d.task_id or "?", str(d.deliveries),
                      _when(d.dead_at), d.reason)
    console.print(table)
    console.print(f"{len(letters)} dead letter(s) in {queue!r}")


@dlq.command()
def inspect(app_path: AppPath, queue: Queue,
            ref: Annotated[str, typer.Argument(help="The reference shown by `dlq list`.")],
            show_args: Annotated[bool, typer.Option(
                "--args", help="Also print the arguments (may hold personal data).")] = False,
            ) -> None:
    """Show one dead letter in full (arguments only with --args)."""

    async def find(app: App) -> tuple[DeadLetter | None, dict[str, Any]]:
        for letter in await app.broker.dead_letters(queue, 10_000):
            if letter.ref == ref:
                return letter, _decoded(app, letter, show_args)
        return None, {}

    letter, decoded = _run(app_path, find)
    if letter is None:
        raise fail(f"no dead letter {ref!r} in {queue!r}")
    console.print({"ref": letter.ref, "queue": letter.queue, "task": letter.task,
                   "id": letter.task_id, "reason": letter.reason,
                   "deliveries": letter.deliveries, "dead_at": _when(letter.dead_at),
                   "bytes": len(letter.body), **decoded})


def _decoded(app: App, letter: DeadLetter, show_args: bool) -> dict[str, Any]:
    try:
        message = app.codec.decode(letter.body)
    except DecodeError as exc:
        return {"decodes": f"no: {exc}"}
    out: dict[str, Any] = {"decodes": "yes", "attempt": message.attempt,
                           "options": dict(message.options)}
    if show_args:
        out.update(args=list(message.args), kwargs=dict(message.kwargs))
    return out


@dlq.command()
def requeue(app_path: AppPath, queue: Queue,
            refs: Annotated[list[str] | None, typer.Argument(help="References to requeue.")]
            = None,
            all_: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")]
            = False) -> None:
    """Put dead letters back on their queue."""

    async def go(app: App) -> int:
        wanted = list(refs or [])
        if all_:
            wanted = [d.ref for d in await app.broker.dead_letters(queue, 1_000_000)]
        return await app.requeue_dead(queue, wanted)

    if not refs and not all_:
        raise fail("name dead-letter references, or pass --all")
    console.print(f"requeued {_run(app_path, go)} message(s) onto {queue!r}")


@dlq.command()
def purge(app_path: AppPath, queue: Queue,
          yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete every dead letter of a queue."""
    if not yes:
        typer.confirm(f"Delete every dead letter of {queue!r}?", abort=True)
    console.print(f"purged {_run(app_path, lambda app: app.broker.purge_dead(queue))} "
                  f"dead letter(s) from {queue!r}")
