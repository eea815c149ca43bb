"""Task routes: which queue (and, on RabbitMQ, exchange and routing key) a task goes to.

``App(task_routes={...})`` maps a task name or a glob pattern to a queue name or to a
mapping with ``queue``, ``routing_key`` and ``exchange``::

    task_routes = {
        "shop.tasks.send_email": "emails",
        "shop.images.*": {"queue": "images", "routing_key": "image.resize"},
    }

Exact names win over patterns; patterns are tried in the order given. The order of
precedence for one call is: per-call options > routes > ``@app.task(queue=...)`` >
the app's default queue.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from asyncq._names import check_queue
from asyncq.errors import ConfigurationError

__all__ = ["Route", "Router"]

_KEYS = frozenset({"queue", "routing_key", "exchange"})


@dataclass(frozen=True, slots=True)
class Route:
    queue: str | None = None
    routing_key: str | None = None
    exchange: str | None = None


RouteSpec = str | Mapping[str, str]


def _parse(pattern: str, spec: RouteSpec) -> Route:
    if isinstance(spec, str):
        return Route(queue=check_queue(spec, f"route {pattern!r}"))
    unknown = set(spec) - _KEYS
    if unknown:
        raise ConfigurationError(f"route {pattern!r} has unknown keys {sorted(unknown)}")
    queue = spec.get("queue")
    if queue is not None:
        check_queue(queue, f"route {pattern!r}")
    return Route(queue, spec.get("routing_key"), spec.get("exchange"))


class Router:
    def __init__(self, routes: Mapping[str, RouteSpec] | None = None) -> None:
        self._exact: dict[str, Route] = {}
        self._patterns: list[tuple[str, Route]] = []
        for pattern, spec in (routes or {}).items():
            route = _parse(pattern, spec)
            if any(ch in pattern for ch in "*?["):
                self._patterns.append((pattern, route))
            else:
                self._exact[pattern] = route

    def route(self, task_name: str) -> Route | None:
        found = self._exact.get(task_name)
        if found is not None:
            return found
        for pattern, route in self._patterns:
            if fnmatch.fnmatchcase(task_name, pattern):
                return route
        return None
