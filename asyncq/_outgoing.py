"""Turning a task call into the message to publish and the handle to return.

This is the producer's hot path (every ``enqueue``). What depends only on the task
(its queue and route, the arity check it needs) is worked out once per task; a plain
call (no per-call options) then costs an id, one msgpack pass and two small objects.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

from asyncq import codec
from asyncq._decoded import gc_paused
from asyncq.brokers import Outgoing
from asyncq.message import new_id, new_ids, valid_id
from asyncq.result import TaskResult
from asyncq.routing import Route
from asyncq.task import NO_OPTIONS, WORKFLOW_HEADER, CallOptions, Signature, Task
from asyncq.wire import ENVELOPE_VERSION

if TYPE_CHECKING:
    from asyncq.app import App

__all__ = ["MAX_DELAY", "Preparer"]

#: The furthest ahead a countdown, eta or expiry may be (ten years, in seconds).
MAX_DELAY: Final = 10 * 365 * 24 * 3600.0

R = TypeVar("R")

_NO_ROUTE = Route()
#: kwargs, options and headers of a plain call (never mutated; only packed)
_EMPTY: Final[dict[str, Any]] = {}


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every call of one task shares."""

    name: str
    queue: str
    routing_key: str | None
    exchange: str | None
    arity: int | None
    ignored: bool


class Preparer:
    """Builds ``(Outgoing, TaskResult)`` pairs for one app."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._codec = app.codec
        self._plans: dict[Task[Any, Any], _Plan] = {}
        #: a router function in task_routes: every call is routed on its own
        self._dynamic = app.router.dynamic

    def _plan(self, task: Task[Any, Any]) -> _Plan:
        plan = self._plans.get(task)
        if plan is None:
            route = self._app.router.route(task.name) or _NO_ROUTE
            plan = self._plans[task] = _Plan(
                task.name, route.queue or task.config.queue, _routing_key(route),
                route.exchange, task.plain_arity, task.config.ignore_result)
        return plan

    def _route_call(self, sig: Signature[R]) -> Signature[R]:
        """With a router function in ``task_routes``: the call with its route as options
        (the call's own options still win)."""
        opts = sig.options
        route = self._app.router.route_call(
            sig.task.name, sig.args, sig.kwargs,
            {"queue": opts.queue, "routing_key": opts.routing_key, "exchange": opts.exchange},
            sig.task)
        if route is None:
            return sig
        routed = replace(opts, queue=opts.queue or route.queue or sig.task.config.queue,
                         routing_key=opts.routing_key or _routing_key(route),
                         exchange=opts.exchange or route.exchange)
        return Signature(sig.task, sig.args, sig.kwargs, routed, sig.immutable)

    def prepare(self, sig: Signature[R]) -> tuple[Outgoing, TaskResult[R]]:
        if self._dynamic:
            sig = self._route_call(sig)
        task = sig.task
        plan = self._plans.get(task) or self._plan(task)
        opts = sig.options
        if opts is NO_OPTIONS:
            task_id = new_id()
            body = _plain_body(codec.packer(), plan, task_id, sig)
            if body is None or not self._codec.fits_plain(body):
                self._codec.check_call(task, sig.args, sig.kwargs)
                body = self._body(plan, task_id, sig, {}, opts)
            outgoing = Outgoing(task_id, plan.queue, body, None, plan.routing_key,
                                plan.exchange)
        else:
            self._codec.check_call(task, sig.args, sig.kwargs)
            outgoing = self._with_options(plan, sig, opts)
        backend = self._app.backend
        # a new id (not one the caller chose, which may have a record already): its
        # record may come over a subscription the backend has now (ResultBackend.generation)
        since = backend.generation if opts is NO_OPTIONS or opts.task_id is None else None
        handle: TaskResult[R] = TaskResult(backend, outgoing.id, plan.name,
                                           ignored=plan.ignored, app=self._app, since=since)
        return outgoing, handle

    def prepare_many(self, sigs: Iterable[Signature[Any]]
                     ) -> tuple[list[Outgoing], list[TaskResult[Any]], list[int]]:
        """``prepare`` for a batch (see :meth:`_prepare_many`), with no cyclic garbage
        collection meanwhile: every object it makes is kept (no cycles to find), and in
        a process holding many objects the collections its 100,000 new ones trigger
        doubled the time of a 50,000-call batch (benchmarks/core.py after 50,000
        concurrent enqueues). The third list holds the positions of delayed calls."""
        sigs = list(sigs)
        if len(sigs) < 1000:
            return self._prepare_many(sigs)
        with gc_paused():
            return self._prepare_many(sigs)

    def _prepare_many(self, sigs: list[Signature[Any]]
                      ) -> tuple[list[Outgoing], list[TaskResult[Any]], list[int]]:
        """``prepare`` for a batch: ids from one random read, one packer, and plain
        calls (positional scalars, no options) packed inline; the bytes are the same."""
        outgoing: list[Outgoing] = []
        handles: list[TaskResult[Any]] = []
        delayed: list[int] = []
        packer = codec.packer()
        app = self._app
        backend = app.backend
        plans = self._plans
        fits = self._codec.fits_plain
        dynamic = self._dynamic
        since = backend.generation  # (see prepare)
        for sig, task_id in zip(sigs, new_ids(len(sigs)), strict=True):
            if dynamic:
                sig = self._route_call(sig)
            plan = plans.get(sig.task) or self._plan(sig.task)
            body = _plain_body(packer, plan, task_id, sig)
            if body is None or not fits(body):
                out, handle = self.prepare(sig)  # the general path (and its errors)
                if out.eta is not None:
                    delayed.append(len(outgoing))
            else:
                out = Outgoing(task_id, plan.queue, body, None, plan.routing_key,
                               plan.exchange)
                handle = TaskResult(backend, task_id, plan.name, ignored=plan.ignored,
                                    app=app, since=since)
            outgoing.append(out)
            handles.append(handle)
        return outgoing, handles, delayed

    def _with_options(self, plan: _Plan, sig: Signature[Any], opts: CallOptions) -> Outgoing:
        if WORKFLOW_HEADER in opts.headers:  # link / link_error: state on the servers
            from asyncq.canvas._store import store_for

            store_for(self._app.backend)  # ConfigurationError where it cannot be kept
        task_id = new_id() if opts.task_id is None else opts.task_id
        if not valid_id(task_id):
            raise ValueError(f"invalid task id {task_id!r}")
        eta = _eta(opts)
        if opts.priority is not None and (
                isinstance(opts.priority, bool) or opts.priority not in range(10)):
            raise ValueError(f"priority must be an int from 0 to 9, not {opts.priority!r}")
        wire_opts: dict[str, Any] = {}
        if eta is not None:
            wire_opts["eta"] = eta
        if opts.expires is not None:
            wire_opts["expires"] = _unix("expires", opts.expires, relative=True)
        body = self._body(plan, task_id, sig, wire_opts, opts)
        return Outgoing(task_id, opts.queue or plan.queue, body, eta,
                        opts.routing_key or plan.routing_key, opts.exchange or plan.exchange,
                        opts.priority)

    def _body(self, plan: _Plan, task_id: str, sig: Signature[Any],
              wire_opts: dict[str, Any], opts: CallOptions) -> bytes:
        return self._codec.encode(task_id, plan.name, sig.args, sig.kwargs, wire_opts,
                                  opts.headers, queue=_signed_queue(plan, opts))


def _signed_queue(plan: _Plan, opts: CallOptions) -> str:
    """The queue a signature binds: the destination, or "" (any) for a message routed
    by its own exchange or routing key, which may reach several queues."""
    if opts.exchange or plan.exchange or opts.routing_key or plan.routing_key:
        return ""
    return opts.queue or plan.queue


def _routing_key(route: Route) -> str | None:
    """A route's routing key counts with its exchange; a route to a queue on the default
    exchange goes there by the queue's name (RabbitMQ binds it so)."""
    return None if route.queue and not route.exchange else route.routing_key


def _plain_body(packer: Any, plan: _Plan, task_id: str, sig: Signature[Any]) -> bytes | None:
    """The envelope of a plain call, or None when the call needs the general path."""
    args = sig.args
    if sig.options is not NO_OPTIONS or sig.kwargs or len(args) != plan.arity:
        return None
    for arg in args:
        if type(arg) not in codec.SCALARS:
            return None
    try:
        body: bytes = packer.pack(
            [ENVELOPE_VERSION, task_id, plan.name, args, _EMPTY, _EMPTY, _EMPTY, 0])
    except (TypeError, ValueError, OverflowError):
        packer.reset()  # drop whatever was half written
        return None  # the general path names the argument
    return body


def _seconds(name: str, value: object) -> float:
    """A finite number of seconds, or ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds or a datetime, "
                         f"not {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{name} must be finite, not {number}")
    return number


def _unix(name: str, value: object, *, relative: bool = False) -> float:
    """A unix time from a datetime (timezone-aware), a unix time, or (``relative``)
    seconds from now; within :data:`MAX_DELAY` of now, ahead or past (a time past is
    due now: its distance only bounds the arithmetic records and tools do with it)."""
    now = time.time()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name}: datetimes must be timezone-aware")
        when = value.timestamp()
    else:
        when = _seconds(name, value) + (now if relative else 0.0)
    if abs(when - now) > MAX_DELAY:
        way = "ahead" if when > now else "ago"
        raise ValueError(f"{name} is more than {MAX_DELAY / 86400 / 365:g} years {way}")
    return when


def _eta(opts: CallOptions) -> float | None:
    if opts.countdown is not None and opts.eta is not None:
        raise ValueError("give countdown or eta, not both")
    if opts.countdown is not None:
        return _unix("countdown", opts.countdown, relative=True)
    if opts.eta is not None:
        return _unix("eta", opts.eta)
    return None
