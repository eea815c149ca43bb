"""Task routes: which queue (and, on RabbitMQ, exchange and routing key) a task goes to.

``App(task_routes=...)`` takes Celery's forms:

- a mapping from a task name, a glob pattern (``"shop.images.*"``) or a compiled
  regular expression (``re.compile(r"shop\\.(images|video)\\..*")``) to a queue name or
  to a mapping with ``queue``, ``routing_key`` and ``exchange``;
- a router function ``(name, args, kwargs, options, task=None, **kw)`` returning such a
  queue name or mapping, or ``None`` for "not mine" (called for every call);
- a list or tuple of those, tried in order (the first answer wins)::

    task_routes = (
        {"shop.tasks.send_email": "emails"},
        {re.compile(r"shop\\.images\\..*"): {"queue": "images"}},
        route_by_size,
    )

Within one mapping exact names win over patterns; patterns are tried in the order
given. Anything else is a :class:`~asyncq.errors.ConfigurationError` when the App is
built. The order of precedence for one call is: per-call options > routes >
``@app.task(queue=...)`` > the app's default queue.

On RabbitMQ a ``routing_key`` is used with the route's ``exchange``; a route that
names a ``queue`` and a ``routing_key`` but no exchange delivers to that queue (on the
default exchange a queue is bound by its own name), as Celery users expect.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from asyncq._names import check_queue
from asyncq.errors import ConfigurationError

__all__ = ["Route", "RouteSpec", "Router", "RoutesConfig"]

_KEYS = frozenset({"queue", "routing_key", "exchange"})


@dataclass(frozen=True, slots=True)
class Route:
    queue: str | None = None
    routing_key: str | None = None
    exchange: str | None = None


RouteSpec: TypeAlias = str | Mapping[str, str]
RouterFunction: TypeAlias = Callable[..., RouteSpec | None]
_Entry: TypeAlias = Mapping[Any, RouteSpec] | RouterFunction
RoutesConfig: TypeAlias = _Entry | Sequence[_Entry]


def _parse(where: str, spec: object) -> Route:
    if isinstance(spec, str):
        return Route(queue=check_queue(spec, f"route {where}"))
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"route {where}: expected a queue name or a mapping, "
                                 f"got {type(spec).__name__}")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ConfigurationError(f"route {where} has unknown keys {sorted(unknown)}")
    for key in _KEYS:
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise ConfigurationError(f"route {where}: {key} must be a string")
    queue = spec.get("queue")
    if queue is not None:
        check_queue(queue, f"route {where}")
    return Route(queue, spec.get("routing_key"), spec.get("exchange"))


class _MapRoute:
    def __init__(self, routes: Mapping[Any, RouteSpec]) -> None:
        self.exact: dict[str, Route] = {}
        self.patterns: list[tuple[Callable[[str], bool], Route]] = []
        for key, spec in routes.items():
            route = _parse(repr(key.pattern if isinstance(key, re.Pattern) else key), spec)
            if isinstance(key, re.Pattern):
                self.patterns.append((_regex(key), route))
            elif not isinstance(key, str):
                raise ConfigurationError(f"task_routes keys are task names, glob patterns or "
                                         f"re.compile() patterns, not {type(key).__name__}")
            elif any(ch in key for ch in "*?["):
                self.patterns.append((_glob(key), route))
            else:
                self.exact[key] = route

    def route(self, name: str) -> Route | None:
        found = self.exact.get(name)
        if found is not None:
            return found
        for matches, route in self.patterns:
            if matches(name):
                return route
        return None


def _regex(pattern: re.Pattern[Any]) -> Callable[[str], bool]:
    if not isinstance(pattern.pattern, str):
        raise ConfigurationError("task_routes: a regular expression must be of text, not bytes")
    return lambda name: pattern.match(name) is not None


def _glob(pattern: str) -> Callable[[str], bool]:
    return lambda name: fnmatch.fnmatchcase(name, pattern)


class Router:
    """Routes from ``task_routes`` (see the module docstring)."""

    def __init__(self, routes: RoutesConfig | None = None) -> None:
        self._entries: list[_MapRoute | RouterFunction] = [
            _entry(item) for item in _items(routes)]
        #: whether some route is a function (then every call is routed on its own)
        self.dynamic = any(not isinstance(e, _MapRoute) for e in self._entries)

    def route(self, task_name: str) -> Route | None:
        """The route of a task from the mappings alone (functions are per call)."""
        for entry in self._entries:
            if isinstance(entry, _MapRoute):
                found = entry.route(task_name)
                if found is not None:
                    return found
        return None

    def route_call(self, task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
                   options: Mapping[str, Any], task: Any = None) -> Route | None:
        """The route of one call: every entry in order, functions included."""
        for entry in self._entries:
            if isinstance(entry, _MapRoute):
                found = entry.route(task_name)
            else:
                answer = entry(task_name, args, kwargs, options, task=task)
                found = None if answer is None else _parse(f"function {entry!r}", answer)
            if found is not None:
                return found
        return None


def _items(routes: object) -> list[object]:
    if routes is None:
        return []
    if isinstance(routes, list | tuple):
        return list(routes)
    return [routes]


def _entry(item: object) -> _MapRoute | RouterFunction:
    if isinstance(item, Mapping):
        return _MapRoute(item)
    if callable(item) and not isinstance(item, str | bytes | type):
        return item
    raise ConfigurationError(
        "task_routes takes a mapping (name, glob or re.compile() pattern -> queue or "
        "{queue, routing_key, exchange}), a router function (name, args, kwargs, options, "
        f"task=None, **kw), or a list or tuple of those; got {type(item).__name__}")
