"""The worker's observability options: ``--events``, ``--metrics-port``, ``--log-format``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from asyncq.app import App
from asyncq.cli._common import fail
from asyncq.cli.supervise import CHILD_ENV
from asyncq.errors import ConfigurationError

if TYPE_CHECKING:
    from asyncq.middleware.prometheus import Metrics

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
    from asyncq.events.monitor import Events

    tracker = Events(heartbeat, received=every_event, started=every_event) if events else None
    metrics = _metrics(metrics_port) if metrics_port is not None else None
    if tracker is not None and metrics is not None:  # one pair of run hooks for both
        from asyncq.events.observed import observed

        app.add_middleware(observed(tracker, metrics))
        return
    for observer in (tracker, metrics):
        if observer is not None:
            app.add_middleware(observer)


def _metrics(port: int) -> Metrics:
    """Metrics on ``port`` (child i of ``-w N`` on ``port + i - 1``)."""
    child = int(os.environ.get(CHILD_ENV) or 1)
    try:
        from asyncq.middleware.prometheus import Metrics

        return Metrics(port=port + child - 1)
    except ConfigurationError as exc:
        raise fail(str(exc)) from None
