"""``asyncq beat``: run the scheduler of periodic tasks, or list its entries."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import sys
from typing import Annotated

import typer

from asyncq.app import App
from asyncq.beat import DEFAULT_LEASE, Beat
from asyncq.cli._common import AppPath, fail, load_or_fail, logging_level, run_async
from asyncq.cli._text import LiteralFormatter
from asyncq.cli.serve import Signals, default_handlers
from asyncq.errors import AsyncqError

__all__ = ["beat", "entry_lines", "entry_rows", "serve_beat"]

LOG_FORMAT = "[%(asctime)s %(levelname)s/beat] %(name)s: %(message)s"
#: The longest --lease (a day): a leader that dies is replaced within it.
MAX_LEASE = 86400.0


def beat(
    app_path: AppPath,
    list_: Annotated[bool, typer.Option(
        "--list", help="Print the entries and their next run times, then exit.")] = False,
    lease: Annotated[float, typer.Option(
        "--lease", min=0.5, help="Seconds a silent leader keeps the leadership (Redis).")
    ] = DEFAULT_LEASE,
    log_level: Annotated[str, typer.Option(
        "-l", "--log-level", help="debug, info, warning or error.")] = "info",
    json_: Annotated[bool, typer.Option(
        "--json", help="With --list, the entries as a JSON array; else log lines as JSON.")]
    = False,
) -> None:
    """Run the scheduler: send each tick of the periodic entries of MODULE:ATTR once.

    Run as many as you like: one leads, the others take over when it stops.
    """
    app = load_or_fail(app_path, local_ok=list_)
    if list_:
        now = dt.datetime.now(dt.UTC)
        if json_:
            typer.echo(json.dumps(entry_rows(app, now), indent=2))
            return
        for line in entry_lines(app, now):
            typer.echo(line)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LiteralFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging_level(log_level), handlers=[handler])
    if json_:
        from asyncq.jsonlog import use_json_logs

        use_json_logs()
    if not math.isfinite(lease) or lease > MAX_LEASE:
        raise fail(f"--lease takes at most {MAX_LEASE:g} seconds, not {lease:g}")
    if not app.entries:
        raise fail(f"{app_path} has no periodic entries (app.periodic / app.schedule)")
    try:
        run_async(serve_beat(Beat(app, lease=lease)))
    except AsyncqError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


def entry_rows(app: App, now: dt.datetime) -> list[dict[str, str]]:
    """One dict per entry: name, task, schedule, missed-tick policy, next run in its zone."""
    rows = []
    for entry in app.entries.values():
        upcoming = entry.schedule.next_after(now)
        zone = getattr(entry.schedule, "tz", app.timezone)
        rows.append({"name": entry.name, "task": entry.signature.task.name,
                     "schedule": entry.schedule.describe(), "missed": entry.missed,
                     "next": upcoming.astimezone(zone).isoformat()})
    return rows


def entry_lines(app: App, now: dt.datetime) -> list[str]:
    """One line per entry: name, task, schedule, missed-tick policy, next run in its zone."""
    lines = [f"{row['name']}  task={row['task']}  {row['schedule']}  missed={row['missed']}  "
             f"next={row['next']}" for row in entry_rows(app, now)]
    return lines or ["(no periodic entries)"]


async def serve_beat(instance: Beat) -> None:
    """Run until SIGTERM or SIGINT, then hand the leadership over.

    A signal while the app still connects stops at once; once connected, the first hands
    the leadership over and returns, the second stops at once, a third ends the process.
    """
    connected = asyncio.Event()

    async def connect_then_run() -> None:
        async with instance.app:  # run() enters it again, without a second connect
            connected.set()
            await instance.run()

    run = asyncio.ensure_future(connect_then_run())

    def abort() -> None:
        run.cancel()

    on_signal = Signals(run, started=connected.is_set, stop=instance.stop, abort=abort,
                        stopping="handing the leadership over (again to stop at once)",
                        aborting="stopping at once (again to exit now)",
                        log=logging.getLogger("asyncq.beat"))
    on_signal.install()
    try:
        await run
    except asyncio.CancelledError:
        if not on_signal.cancelled and on_signal.count < 2:
            raise
    finally:
        default_handlers()
