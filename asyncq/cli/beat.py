"""``asyncq beat``: run the scheduler of periodic tasks, or list its entries."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import sys
from typing import Annotated

import typer

from asyncq.app import App
from asyncq.beat import DEFAULT_LEASE, Beat
from asyncq.cli._common import AppPath, fail, load_or_fail, run_async
from asyncq.errors import AsyncqError

__all__ = ["beat", "entry_lines", "serve_beat"]

LOG_FORMAT = "[%(asctime)s %(levelname)s/beat] %(name)s: %(message)s"


def beat(
    app_path: AppPath,
    list_: Annotated[bool, typer.Option(
        "--list", help="Print the entries and their next run times, then exit.")] = False,
    lease: Annotated[float, typer.Option(
        "--lease", min=0.5, help="Seconds a silent leader keeps the leadership (Redis).")
    ] = DEFAULT_LEASE,
    log_level: Annotated[str, typer.Option(
        "-l", "--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the scheduler: send each tick of the periodic entries of MODULE:ATTR once.

    Run as many as you like: one leads, the others take over when it stops.
    """
    app = load_or_fail(app_path, local_ok=list_)
    if list_:
        for line in entry_lines(app, dt.datetime.now(dt.UTC)):
            typer.echo(line)
        return
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    if not app.entries:
        raise fail(f"{app_path} has no periodic entries (app.periodic / app.schedule)")
    try:
        run_async(serve_beat(Beat(app, lease=lease)))
    except AsyncqError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


def entry_lines(app: App, now: dt.datetime) -> list[str]:
    """One line per entry: name, task, schedule, missed-tick policy, next run in its zone."""
    lines = []
    for entry in app.entries.values():
        upcoming = entry.schedule.next_after(now)
        zone = getattr(entry.schedule, "tz", app.timezone)
        lines.append(f"{entry.name}  task={entry.signature.task.name}  "
                     f"{entry.schedule.describe()}  missed={entry.missed}  "
                     f"next={upcoming.astimezone(zone).isoformat()}")
    return lines or ["(no periodic entries)"]


async def serve_beat(instance: Beat) -> None:
    """Run until SIGTERM or SIGINT, then hand the leadership over."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, instance.stop)
    await instance.run()
