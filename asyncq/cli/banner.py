"""The worker's startup banner (credentials masked)."""

from __future__ import annotations

import os
import socket
from typing import Any

from asyncq import __version__
from asyncq.app import App

__all__ = ["banner", "banner_info"]


def banner(app: App, *, queues: list[str], concurrency: int, prefetch: int,
           processes: int = 1) -> str:
    tasks = sorted(app.tasks)
    lines = [
        f" -------------- asyncq@{socket.gethostname()} v{__version__} (pid {os.getpid()})",
        f" app:          {app.name}",
        f" broker:       {app.broker.safe_url}",
        f" results:      {app.backend.safe_url}",
        f" concurrency:  {concurrency} (prefetch {prefetch})"
        + (f" x {processes} processes" if processes > 1 else ""),
        f" queues:       {', '.join(queues)}",
        " tasks:",
        *(f"   . {name}  [{app.queue_for(app.tasks[name])}]" for name in tasks),
    ]
    if not tasks:
        lines.append("   (none registered)")
    return "\n".join(lines)


def banner_info(app: App, *, queues: list[str], concurrency: int, prefetch: int,
                processes: int = 1) -> dict[str, Any]:
    """The banner as one JSON-ready object (``asyncq worker --json``)."""
    return {"event": "worker-banner", "version": __version__, "host": socket.gethostname(),
            "pid": os.getpid(), "app": app.name, "broker": app.broker.safe_url,
            "results": app.backend.safe_url, "concurrency": concurrency,
            "prefetch": prefetch, "processes": processes, "queues": list(queues),
            "tasks": {name: app.queue_for(app.tasks[name]) for name in sorted(app.tasks)}}
