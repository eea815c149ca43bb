"""``asyncq dlq``: list, inspect, requeue and purge dead letters.

What a dead letter holds (task name, id, reason, body) was written by whoever could
write to the broker: it is printed literally (see :mod:`asyncq.cli._text`), each field
cut at a documented length, and a letter with missing or malformed fields is listed
with what can be read of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

import typer

from asyncq.app import App
from asyncq.brokers import DeadLetter
from asyncq.cli._common import AppPath, OneLineGroup, fail, load_or_fail, run_on, task_queues
from asyncq.cli._literal import bounded_json, dump_json
from asyncq.cli._text import FIELD_LIMIT, INSPECT_LIMIT, LazyConsole, cell, literal
from asyncq.errors import DecodeError

__all__ = ["dlq"]

T = TypeVar("T")

dlq = typer.Typer(help="Dead letters: list, inspect, requeue, purge. Everything read from the "
                  "broker is printed literally: control characters escaped (\\x1b), no "
                  "markup, each field cut at a fixed length.",
                  no_args_is_help=True, cls=OneLineGroup)
console = LazyConsole(markup=False, emoji=False, highlight=False)

Queue = Annotated[str, typer.Option("-Q", "--queue", help="The queue whose dead letters to use.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (strings cut at 2000 characters).")]

#: Letters `dlq requeue` looks through for the references it is given (as
#: App.requeue_dead does), and the most `dlq list --limit` shows.
SEARCH_LIMIT = 1_000_000
#: Letters `dlq inspect` looks through for its reference.
INSPECT_SEARCH = 10_000



def _when(ts: float) -> str:
    if ts <= 0:  # missing (or forged)
        return "?"
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):  # NaN, inf, years out of range
        return "?"


def _note_unused(app: App, queue: str) -> None:
    queues = task_queues(app)
    if queue not in queues:
        typer.echo(f"note: no task of this app uses the queue {literal(repr(queue))} "
                   f"(its tasks use: {literal(', '.join(queues) or 'none')})", err=True)


@dlq.command("list")
def list_(app_path: AppPath, queue: Queue,
          limit: Annotated[int, typer.Option(min=1, max=SEARCH_LIMIT,
                                             help="Most letters to show.")] = 100,
          json_: Json = False) -> None:
    """List dead letters: reference, task, id, deliveries, when, reason.

    Each field is cut at 200 characters; control characters are shown escaped.
    """

    async def go(app: App) -> list[DeadLetter]:
        return await app.broker.dead_letters(queue, limit)

    app = load_or_fail(app_path)
    letters = run_on(app, go)
    if json_:
        typer.echo(dump_json(bounded_json([_summary(d) for d in letters], INSPECT_LIMIT)))
        return
    from rich.table import Table  # (rich: imported by the commands that print with it)

    table = Table("ref", "task", "id", "deliveries", "dead at (UTC)", "reason")
    for column in table.columns[:5]:
        column.no_wrap = True
    for d in letters:
        table.add_row(cell(d.ref), cell(d.task or "?"), cell(d.task_id or "?"),
                      cell(str(d.deliveries)), cell(_when(d.dead_at)),
                      cell(d.reason, FIELD_LIMIT))
    console.print(table)
    typer.echo(f"{len(letters)} dead letter(s) in {literal(repr(queue))}")
    _note_unused(app, queue)


@dlq.command()
def inspect(app_path: AppPath, queue: Queue,
            ref: Annotated[str, typer.Argument(help="The reference shown by `dlq list`.")],
            show_args: Annotated[bool, typer.Option(
                "--args", help="Also print the arguments (may hold personal data).")] = False,
            json_: Json = False) -> None:
    """Show one dead letter (arguments only with --args).

    Strings are shown as Python literals, each cut at 2000 characters.
    """

    async def find(app: App) -> tuple[DeadLetter | None, dict[str, Any]]:
        for letter in await app.broker.dead_letters(queue, INSPECT_SEARCH):
            if letter.ref == ref:
                return letter, _decoded(app, letter, show_args)
        return None, {}

    letter, decoded = run_on(load_or_fail(app_path), find)
    if letter is None:
        raise fail(f"no dead letter {ref!r} in {queue!r}")
    if json_:
        typer.echo(dump_json(bounded_json({**_summary(letter), **decoded}, INSPECT_LIMIT)))
        return
    from rich.pretty import Pretty

    console.print(Pretty({"ref": letter.ref, "queue": letter.queue, "task": letter.task,
                          "id": letter.task_id, "reason": letter.reason,
                          "deliveries": letter.deliveries, "dead_at": _when(letter.dead_at),
                          "bytes": len(letter.body), **decoded},
                         max_string=INSPECT_LIMIT, max_length=100, max_depth=10))


def _summary(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as ``--json`` shows it (no body)."""
    return {"ref": letter.ref, "queue": letter.queue, "task": letter.task,
            "id": letter.task_id, "reason": letter.reason, "deliveries": letter.deliveries,
            "dead_at": letter.dead_at if _when(letter.dead_at) != "?" else None,
            "bytes": len(letter.body)}


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
            = False,
            json_: Json = False) -> None:
    """Put dead letters back on their queue.

    Named references that are not dead letters of the queue are an error (exit 2, naming
    them), and then nothing is requeued.
    """
    if not refs and not all_:
        raise fail("name dead-letter references, or pass --all")

    async def go(app: App) -> tuple[int, list[str], int]:
        stored = [d.ref for d in await app.broker.dead_letters(queue, SEARCH_LIMIT)]
        unknown = _unknown(refs or [], stored)
        if unknown:
            return 0, unknown, 0
        wanted = stored if all_ else list(dict.fromkeys(refs or []))
        return await app.requeue_dead(queue, wanted), [], len(wanted)

    moved, unknown, wanted = run_on(load_or_fail(app_path), go)
    if unknown:
        shown = ", ".join(literal(repr(ref)) for ref in unknown[:20])
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        raise fail(f"not dead letters of {queue!r}: {shown}{more} (nothing requeued)")
    if json_:
        typer.echo(dump_json({"queue": queue, "requeued": moved, "not_requeued": wanted - moved}))
        return
    typer.echo(f"requeued {moved} message(s) onto {literal(repr(queue))}")
    if moved < wanted:
        typer.echo(f"note: {wanted - moved} dead letter(s) not requeued: no message body "
                   "(a forged entry, now removed) or already gone", err=True)


def _unknown(refs: Sequence[str], stored: Sequence[str]) -> list[str]:
    known = set(stored)
    return [ref for ref in dict.fromkeys(refs) if ref not in known]


@dlq.command()
def purge(app_path: AppPath, queue: Queue,
          yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
          json_: Json = False) -> None:
    """Delete every dead letter of a queue."""
    if not yes:
        try:
            sure = typer.confirm(f"Delete every dead letter of {literal(repr(queue))}?")
        except typer.Abort:  # end of input
            sure = False
        if not sure:
            raise fail("nothing purged (answer y, or pass --yes)")

    async def go(app: App) -> int:
        return await app.broker.purge_dead(queue)

    purged = run_on(load_or_fail(app_path), go)
    if json_:
        typer.echo(dump_json({"queue": queue, "purged": purged}))
        return
    typer.echo(f"purged {purged} dead letter(s) from {literal(repr(queue))}")

