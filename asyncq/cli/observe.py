"""The worker's observability options: ``--events``, ``--metrics-port``, ``--log-format``."""

from __future__ import annotations

import os

from asyncq.app import App
from asyncq.cli._common import fail
from asyncq.cli.supervise import CHILD_ENV
from asyncq.errors import ConfigurationError

__all__ = ["observe"]


def observe(app: App, *, events: bool, heartbeat: float, metrics_port: int | None,
            log_format: str, every_event: bool = False) -> None:
    """Add the middleware the options ask for to ``app`` (before its Worker is built)."""
    if log_format not in ("text", "json"):
        raise fail(f"--log-format takes text or json, not {log_format!r}")
    if log_format == "json":
        from asyncq.jsonlog import LogContext, use_json_logs

        use_json_logs()
        app.add_middleware(LogContext())
    if events:
        from asyncq.events.monitor import Events

        app.add_middleware(Events(heartbeat, received=every_event, started=every_event))
    if metrics_port is not None:
        child = int(os.environ.get(CHILD_ENV) or 1)
        try:
            from asyncq.middleware.prometheus import Metrics

            app.add_middleware(Metrics(port=metrics_port + child - 1))
        except ConfigurationError as exc:
            raise fail(str(exc)) from None
