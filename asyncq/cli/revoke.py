"""``asyncq revoke APP ID... [--terminate]``: revoke tasks by id."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from asyncq.app import App
from asyncq.cli._common import AppPath, fail, load_or_fail, run_async
from asyncq.errors import AsyncqError
from asyncq.message import valid_id

__all__ = ["revoke"]


def revoke(
    app_path: AppPath,
    task_ids: Annotated[list[str], typer.Argument(help="Task ids to revoke.",
                                                  metavar="ID...")],
    terminate: Annotated[bool, typer.Option(
        "--terminate", help="Also cancel the task if it is running now.")] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="Print JSON: the revoked ids and whether to terminate.")] = False,
) -> None:
    """Revoke tasks: they will not run (state REVOKED); --terminate also cancels a run
    in progress. Every worker of the app hears of it within a second."""
    bad = [task_id for task_id in task_ids if not valid_id(task_id)]
    if bad:
        raise fail(f"not a task id: {bad[0][:130]!r}")
    app = load_or_fail(app_path)
    try:
        run_async(_revoke(app, task_ids, terminate, json_))
    except AsyncqError as exc:
        raise fail(str(exc)) from None


async def _revoke(app: App, task_ids: list[str], terminate: bool, json_: bool) -> None:
    async with app:
        done = []
        for task_id in dict.fromkeys(task_ids):
            await app.revoke(task_id, terminate=terminate)
            done.append(task_id)
            if not json_:
                typer.echo(f"revoked {task_id}{' (terminate)' if terminate else ''}")
    if json_:
        typer.echo(json.dumps({"revoked": done, "terminate": terminate}))
