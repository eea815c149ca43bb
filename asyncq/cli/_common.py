"""Helpers shared by the CLI commands.

Every failure the CLI reports is one line on stderr, ``asyncq: error: ...``, with exit
code 2: asyncq's own errors, bad options (click's usage errors, which would otherwise
print a usage box) and, as a last resort, any unexpected exception (its type and text,
never a traceback). Messages are printed literally (see :mod:`asyncq.cli._text`) with
the app's URLs masked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from asyncq._urls import redact
from asyncq.app import App
from asyncq.brokers.memory import MemoryBroker
from asyncq.cli._text import ERROR_LIMIT, literal
from asyncq.cli.discover import load_app
from asyncq.errors import AsyncqError
from asyncq.results.memory import MemoryResultBackend

__all__ = [
    "AppPath",
    "OneLineGroup",
    "fail",
    "load_or_fail",
    "logging_level",
    "run_async",
    "task_queues",
]

T = TypeVar("T")

AppPath = Annotated[str, typer.Argument(help="The app, as package.module:attribute.",
                                        metavar="MODULE:ATTR")]

#: Set to 1 to see the traceback of an unexpected error (for bug reports).
TRACEBACK_ENV = "ASYNCQ_TRACEBACK"

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

#: URLs whose credentials error lines must not show (the loaded apps').
_URLS: list[str] = []


def _masked(message: str) -> str:
    urls = [*_URLS, os.environ.get("ASYNCQ_BROKER", ""), os.environ.get("ASYNCQ_BACKEND", "")]
    for url in sorted(filter(None, urls), key=len, reverse=True):
        message = redact(message, url)
    return message


def fail(message: str) -> typer.Exit:
    """Print one line to stderr; the caller raises the returned exit (code 2)."""
    typer.echo(f"asyncq: error: {literal(_masked(message), ERROR_LIMIT)}", err=True)
    return typer.Exit(2)


def unexpected(exc: BaseException) -> typer.Exit:
    """One line for an exception no command expected (a bug, or a library's error);
    with ``ASYNCQ_TRACEBACK=1`` in the environment the traceback is printed first."""
    if os.environ.get(TRACEBACK_ENV) == "1":
        traceback.print_exception(exc, file=sys.stderr)
    text = str(exc)
    return fail(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


class OneLineGroup(TyperGroup):
    """The command group: usage errors and unexpected exceptions become one line.

    Usage errors are recognised by their ``format_message`` (typer's vendored click and
    click alike); a missing-arguments help page (``NoArgsIsHelpError``, matched by name as
    typer itself does) is still shown.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except Exception as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            raise _one_line(exc) from None


def _one_line(exc: Exception) -> Exception:
    if isinstance(exc, typer.Exit | typer.Abort) or type(exc).__name__ == "NoArgsIsHelpError":
        return exc
    message = getattr(exc, "format_message", None)
    if callable(message) and hasattr(exc, "exit_code"):  # a usage error
        return fail(str(message()))
    return unexpected(exc)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def load_or_fail(path: str, *, local_ok: bool = False) -> App:
    """The app at ``path``; refused when its broker or backend lives in this process only
    (``memory://``): another process (a worker, a producer) could never see its tasks.
    ``local_ok`` for commands that do not talk to the broker (``beat --list``)."""
    try:
        app = load_app(path)
    except AsyncqError as exc:
        raise fail(str(exc)) from None
    _URLS.extend([app.broker.url, getattr(app.backend, "url", "")])
    if local_ok:
        return app
    if isinstance(app.broker, MemoryBroker):
        raise fail(f"{path} uses the in-process memory:// broker, which no other process "
                   "can reach: set ASYNCQ_BROKER (e.g. redis://localhost:6379/0) or pass "
                   "App(broker=...)")
    if isinstance(app.backend, MemoryResultBackend):
        raise fail(f"{path} keeps results in this process (memory://), where no other "
                   "process can read them: remove backend=, or set a Redis or AMQP one")
    return app


def logging_level(value: str) -> int:
    """A ``-l`` value as a logging level."""
    if value.lower() not in LOG_LEVELS:
        raise fail(f"-l/--log-level takes {', '.join(LOG_LEVELS)}, not {value!r}")
    return logging.getLevelNamesMapping()[value.upper()]


def task_queues(app: App) -> Sequence[str]:
    """The queues the app's tasks go to (by their routes, else their own queue)."""
    return sorted({app.queue_for(task) for task in app.tasks.values()})


def run_on(app: App, action: Callable[[App], Awaitable[T]]) -> T:
    """Connect ``app``, run ``action``; an asyncq error ends the command with one line."""

    async def go() -> T:
        async with app:
            return await action(app)

    try:
        return run_async(go())
    except AsyncqError as exc:
        raise fail(str(exc)) from None
