"""Helpers shared by the CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer

from asyncq.app import App
from asyncq.cli.discover import load_app
from asyncq.errors import AsyncqError

__all__ = ["AppPath", "fail", "load_or_fail", "run_async"]

T = TypeVar("T")

AppPath = Annotated[str, typer.Argument(help="The app, as package.module:attribute.",
                                        metavar="MODULE:ATTR")]


def fail(message: str) -> typer.Exit:
    """Print one line to stderr; the caller raises the returned exit (code 2)."""
    typer.echo(f"asyncq: error: {message}", err=True)
    return typer.Exit(2)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def load_or_fail(path: str) -> App:
    try:
        return load_app(path)
    except AsyncqError as exc:
        raise fail(str(exc)) from None
