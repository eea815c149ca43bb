"""``asyncq enqueue``: send one task by name from the command line."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any

import typer

from asyncq.app import App
from asyncq.cli._common import AppPath, fail, load_or_fail, run_async
from asyncq.errors import AsyncqError
from asyncq.message import valid_id

__all__ = ["enqueue"]


def enqueue(
    app_path: AppPath,
    task: Annotated[str, typer.Argument(help="The registered task name.")],
    args: Annotated[str, typer.Option("--args", help="Positional arguments as a JSON array.")]
    = "[]",
    kwargs: Annotated[str, typer.Option("--kwargs", help="Keyword arguments as a JSON object.")]
    = "{}",
    task_id: Annotated[str | None, typer.Option(
        "--task-id", help="The task id (default: a new random one).")] = None,
    queue: Annotated[str | None, typer.Option(
        "--queue", help="Send to this queue instead of the task's own.")] = None,
    countdown: Annotated[float | None, typer.Option(
        "--countdown", help="Run no earlier than this many seconds from now.")] = None,
    eta: Annotated[str | None, typer.Option(
        "--eta", help="Run no earlier than this ISO-8601 time with a time zone, "
        "e.g. 2030-01-01T09:00:00+00:00.")] = None,
    wait: Annotated[float | None, typer.Option(
        "--wait", help="Wait up to this many seconds and print the result as one line of "
        "JSON (non-ASCII and control characters escaped).")] = None,
    json_: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object: id, task, queue (and result with --wait).")]
    = False,
) -> None:
    """Send one task by name and print its id (and result with --wait)."""
    app = load_or_fail(app_path)
    if task not in app.tasks:
        raise fail(f"no task named {task!r} in {app_path} (known: {', '.join(sorted(app.tasks))})")
    call_args = _json(args, list, "--args", "a JSON array, e.g. '[1, 2]'")
    call_kwargs = _json(kwargs, dict, "--kwargs", "a JSON object, e.g. '{\"x\": 1}'")
    options = _options(task_id, queue, countdown, eta)
    if wait is not None and not (math.isfinite(wait) and wait >= 0):
        raise fail(f"--wait takes a number of seconds >= 0, not {wait}")
    try:
        run_async(_enqueue(app, task, call_args, call_kwargs, options, wait, json_))
    except (AsyncqError, TypeError, ValueError, RecursionError) as exc:
        raise fail(str(exc) or type(exc).__name__) from None


def _json(text: str, kind: type[Any], option: str, expected: str) -> Any:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise fail(f"{option} must be {expected}: {exc or type(exc).__name__}") from None
    if not isinstance(value, kind):
        raise fail(f"{option} must be {expected}, not a JSON {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _options(task_id: str | None, queue: str | None, countdown: float | None,
             eta: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if task_id is not None:
        if not valid_id(task_id):
            raise fail(f"invalid task id {task_id!r}: 1-128 of A-Z a-z 0-9 _ . : -, "
                       "starting with a letter or digit")
        options["task_id"] = task_id
    if queue is not None:
        if not queue.strip():
            raise fail("--queue takes a queue name, not an empty one")
        options["queue"] = queue
    if countdown is not None and eta is not None:
        raise fail("give --countdown or --eta, not both")
    if countdown is not None:
        if not (math.isfinite(countdown) and countdown >= 0):
            raise fail(f"--countdown takes a number of seconds >= 0, not {countdown}")
        options["countdown"] = countdown
    if eta is not None:
        options["eta"] = _eta(eta)
    return options


def _eta(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--eta takes an ISO-8601 time with a time zone "
                   f"(e.g. 2030-01-01T09:00:00+00:00), not {text!r}") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise fail(f"--eta needs a time zone (e.g. {text}+00:00 or {text}Z)")
    return when


async def _enqueue(app: App, task: str, args: list[Any], kwargs: dict[str, Any],
                   options: dict[str, Any], wait: float | None, json_: bool) -> None:
    async with app:
        handle = await app.send_task(task, args, kwargs, **options)
        if not json_:
            typer.echo(handle.id)
        value = None if wait is None else await handle.get(timeout=wait)
        if json_:
            sent = {"id": handle.id, "task": task,
                    "queue": options.get("queue") or app.queue_for(app.tasks[task])}
            typer.echo(json.dumps({**sent, **({"result": value} if wait is not None else {})},
                                  default=str))
        elif wait is not None:
            typer.echo(json.dumps(value, default=str))
