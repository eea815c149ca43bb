"""The ``asyncq`` command line (typer)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
from typing import Annotated, Literal

import typer

from asyncq.app import App
from asyncq.beat import Beat
from asyncq.cli._common import (
    AppPath,
    OneLineGroup,
    fail,
    load_or_fail,
    logging_level,
    run_async,
    task_queues,
)
from asyncq.cli._early import note_early
from asyncq.cli._text import LiteralFormatter
from asyncq.cli.banner import banner, banner_info
from asyncq.cli.beat import beat
from asyncq.cli.dlq import dlq
from asyncq.cli.enqueue import enqueue
from asyncq.cli.observe import observe
from asyncq.cli.ops import register as register_ops
from asyncq.cli.reload import RELOAD_CHILD_ENV, reload_worker
from asyncq.cli.revoke import revoke
from asyncq.cli.serve import serve
from asyncq.cli.supervise import (
    CHILD_ENV,
    CHILD_START_PATIENCE,
    child_exit_code,
    child_middleware,
    stop_with_parent,
    supervise,
)
from asyncq.errors import AsyncqError
from asyncq.worker import Worker

__all__ = ["cli", "main"]

cli = typer.Typer(
    name="asyncq",
    help="asyncq: an asyncio-native task queue. Run workers, send tasks, inspect queues. "
    "The broker is the app's own (App(..., broker=URL)); an app that names none uses "
    "$ASYNCQ_BROKER, else memory://.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineGroup,
)

LOG_FORMAT = "[%(asctime)s %(levelname)s/%(processName)s] %(name)s: %(message)s"


@cli.command()
def worker(
    app_path: AppPath,
    queues: Annotated[str | None, typer.Option(
        "-Q", "--queues", envvar="ASYNCQ_QUEUES",
        help="Comma-separated queues (default: every queue a task uses).")
    ] = None,
    concurrency: Annotated[int, typer.Option(
        "-c", "--concurrency", min=1, envvar="ASYNCQ_CONCURRENCY",
        help="Most tasks running at once.")] = 100,
    log_level: Annotated[str, typer.Option(
        "-l", "--log-level", envvar="ASYNCQ_LOG_LEVEL",
        help="debug, info, warning or error.")] = "info",
    prefetch: Annotated[int | None, typer.Option(
        "--prefetch", min=0, envvar="ASYNCQ_PREFETCH",
        help="Messages held beyond running ones (default: concurrency).")
    ] = None,
    shutdown_timeout: Annotated[float, typer.Option(
        "--shutdown-timeout", min=0, envvar="ASYNCQ_SHUTDOWN_TIMEOUT",
        help="Seconds running tasks get to finish on SIGTERM.")
    ] = 30.0,
    lease: Annotated[float, typer.Option(
        "--lease", min=0.1, help="Seconds before a silent worker's messages are recovered.")
    ] = 60.0,
    max_deliveries: Annotated[int, typer.Option(
        "--max-deliveries", min=1, help="Deliveries before a message is dead-lettered.")] = 5,
    workers: Annotated[int | None, typer.Option(
        "-w", "--workers", min=1, envvar="ASYNCQ_WORKERS", help="Worker processes under a "
        "supervisor, which replaces any that exits (default: one worker in this process).")
    ] = None,
    unsafe_server: Annotated[str, typer.Option(
        "--unsafe-server", help="When the server could lose tasks (e.g. Redis allkeys-* "
        "eviction): warn, refuse or ignore.")] = "warn",
    loop_lag: Annotated[float, typer.Option(
        "--loop-lag", min=0, help="Warn when a task blocks the event loop this long (0: off).")
    ] = 1.0,
    events: Annotated[bool, typer.Option(
        "-E", "--events", help="Send heartbeats and task events; answer control requests.")
    ] = False,
    events_all: Annotated[bool, typer.Option(
        "--events-all", help="With --events, also task-received and task-started.")
    ] = False,
    heartbeat: Annotated[float, typer.Option(
        "--heartbeat", min=0.1, help="Seconds between heartbeats (with --events).")] = 2.0,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", envvar="ASYNCQ_METRICS_PORT", help="Serve Prometheus metrics on "
        "this port (child i of -w N: port+i-1).")] = None,
    log_format: Annotated[str, typer.Option(
        "--log-format", help="text or json (json: task id, name, queue, attempt).")] = "text",
    with_beat: Annotated[bool, typer.Option(
        "--beat", "-B", help="Also run the scheduler of periodic tasks (see `asyncq beat`).")
    ] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="Threads for plain def tasks (default: min(32, concurrency)).")
    ] = None,
    max_tasks_per_child: Annotated[int | None, typer.Option(
        "--max-tasks-per-child", min=1, help="Replace a worker process after this many tasks "
        "(implies a supervisor).")] = None,
    max_memory_per_child: Annotated[float | None, typer.Option(
        "--max-memory-per-child", min=1, help="Replace a worker process whose resident memory "
        "exceeds this many MiB (implies a supervisor).")] = None,
    reload: Annotated[bool, typer.Option(
        "--reload", help="Restart when a .py file in the app's directory changes "
        "(development; needs asyncq[reload]).")] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="The banner as one JSON line and log lines as JSON "
        "(implies --log-format json).")] = False,
) -> None:
    """Run a worker: consume QUEUES and run tasks of MODULE:ATTR.

    Logs one INFO line "ready: consuming QUEUES" once it consumes. SIGTERM or SIGINT while
    it connects stops it; once ready, the first lets running tasks finish, the second
    aborts them, a third ends the process at once.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LiteralFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging_level(log_level), handlers=[handler])
    _check_numbers(concurrency=concurrency, prefetch=prefetch or 0, workers=workers or 1,
                   lease=lease, shutdown_timeout=shutdown_timeout, loop_lag=loop_lag,
                   max_memory_per_child=max_memory_per_child or 1)
    app = load_or_fail(app_path)
    observe(app, events=events or events_all, heartbeat=heartbeat, metrics_port=metrics_port,
            log_format="json" if json_ else log_format, every_event=events_all)
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    child = os.environ.get(CHILD_ENV)
    guards = child_middleware(app, max_tasks_per_child, max_memory_per_child) if child else []
    try:
        instance = Worker(app, names, concurrency=concurrency, prefetch=prefetch,
                          shutdown_timeout=shutdown_timeout, lease=lease,
                          max_deliveries=max_deliveries, loop_lag_threshold=loop_lag or None,
                          unsafe_server=_choice(unsafe_server), threads=threads)
    except (AsyncqError, ValueError) as exc:
        raise fail(str(exc)) from None
    # Until the event loop (or the supervisor, or the reloader) installs its own
    # handlers, a SIGTERM is noted and acted on then: the default action ended a worker
    # signalled as soon as its banner showed with status -15.
    signal.signal(signal.SIGTERM, note_early)
    if reload:  # the child this starts prints the banner, and again after each change
        raise typer.Exit(reload_worker(app_path, sys.argv[1:], shutdown_timeout))
    with contextlib.suppress(KeyboardInterrupt):
        _start_and_serve(app, instance, child=child, processes=workers,
                         recycle=bool(max_tasks_per_child or max_memory_per_child),
                         json_=json_, with_beat=with_beat)
    raise typer.Exit(child_exit_code(guards))


#: Upper bounds of the worker's numeric options: beyond them a worker could not fetch
#: (Redis counts and times are 64-bit) or would fork without end.
MOST = {"concurrency": 100_000, "prefetch": 1_000_000, "workers": 1024,
        "lease": 7 * 86400.0, "shutdown_timeout": 7 * 86400.0, "loop_lag": 86400.0,
        "max_memory_per_child": 1024.0 * 1024}  # MiB: a TiB


def _check_numbers(**values: float) -> None:
    for name, value in values.items():
        option = "--" + name.replace("_", "-")
        if not math.isfinite(value) or value > MOST[name]:
            raise fail(f"{option} takes at most {_number(MOST[name])}, not {_number(value)}")


def _number(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and value == int(value) else f"{value:g}"


def _start_and_serve(app: App, instance: Worker, *, child: str | None, processes: int | None,
                     recycle: bool, json_: bool, with_beat: bool) -> None:
    if os.environ.get(RELOAD_CHILD_ENV):
        stop_with_parent()
    if child:  # one of `-w N`'s processes: the supervisor printed the banner
        multiprocessing.current_process().name = f"Worker-{child}"
        stop_with_parent()
    else:
        _print_banner(app, instance, processes or 1, json_)
        _warn_unused(app, instance.queues)
        if processes or recycle:
            raise typer.Exit(supervise(processes or 1, sys.argv[1:]))
    try:
        run_async(serve(instance, Beat(app) if with_beat else None,
                        patience=CHILD_START_PATIENCE if child else 0.0))
    except AsyncqError as exc:
        raise fail(str(exc)) from None


def _print_banner(app: App, instance: Worker, processes: int, json_: bool) -> None:
    if json_:
        typer.echo(json.dumps(banner_info(
            app, queues=instance.queues, concurrency=instance.concurrency,
            prefetch=instance.prefetch, processes=processes)), err=True)
        return
    typer.echo(banner(app, queues=instance.queues, concurrency=instance.concurrency,
                      prefetch=instance.prefetch, processes=processes), err=True)


def _warn_unused(app: App, queues: list[str]) -> None:
    used = task_queues(app)
    for name in sorted(set(queues) - set(used)):
        logging.getLogger("asyncq.worker").warning(
            "no task of this app uses the queue %r (its tasks use: %s)", name,
            ", ".join(used) or "none")


def _choice(value: str) -> Literal["warn", "refuse", "ignore"]:
    choices: dict[str, Literal["warn", "refuse", "ignore"]] = {
        "warn": "warn", "refuse": "refuse", "ignore": "ignore"}
    if value in choices:
        return choices[value]
    raise fail(f"--unsafe-server takes warn, refuse or ignore, not {value!r}")


cli.command()(enqueue)
cli.add_typer(dlq, name="dlq")
cli.command()(beat)
cli.command()(revoke)
register_ops(cli)


def main() -> None:
    cli()
