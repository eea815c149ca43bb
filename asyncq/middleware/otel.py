"""OpenTelemetry tracing (``pip install 'asyncq[otel]'``): ``App(middleware=[Tracing()])``.

- enqueue: a ``send <task>`` span of kind PRODUCER, child of whatever span is current
  (a web request, say); its context goes into the message headers (W3C
  ``traceparent``/``tracestate``, through the globally configured propagator);
- run: a ``run <task>`` span of kind CONSUMER whose parent is the context read from the
  message headers, so one trace links the request, its enqueue and the run in another
  process. A task that raises gets the exception recorded and an ERROR status.

Spans carry ``messaging.system`` = ``asyncq``, ``messaging.destination.name`` (the
queue), ``messaging.message.id`` (the task id), ``asyncq.task`` and ``asyncq.attempt``.
The producer and the worker both need the middleware (the same App module usually does).
A send whose publish fails never reaches ``after_enqueue``: its span stays open until
:data:`_MAX_OPEN` later sends push it out (it is ended then).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

from asyncq.errors import ConfigurationError
from asyncq.middleware import Call, CallNext, Job, Middleware

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind
except ImportError:  # pragma: no cover - the extra is not installed
    trace = None  # type: ignore[assignment]

__all__ = ["Tracing"]

#: Producer spans whose publish never finished are dropped beyond this many.
_MAX_OPEN: Final = 10_000


class Tracing(Middleware):
    """Producer and consumer spans; ``tracer_provider`` defaults to the global one."""

    def __init__(self, tracer_provider: Any = None) -> None:
        if trace is None:
            raise ConfigurationError("tracing needs OpenTelemetry: pip install 'asyncq[otel]'")
        from asyncq import __version__

        self.tracer = trace.get_tracer("asyncq", __version__, tracer_provider=tracer_provider)
        self._open: OrderedDict[int, Any] = OrderedDict()

    async def before_enqueue(self, call: Call) -> None:
        queue = call.options.queue or call.task.app.queue_for(call.task)
        span = self.tracer.start_span(f"send {call.name}", kind=SpanKind.PRODUCER,
                                      attributes={"messaging.system": "asyncq",
                                                  "messaging.operation": "publish",
                                                  "messaging.destination.name": queue,
                                                  "asyncq.task": call.name})
        propagate.inject(call.headers, context=trace.set_span_in_context(span))
        self._open[id(call)] = span
        while len(self._open) > _MAX_OPEN:
            self._open.popitem(last=False)[1].end()

    async def after_enqueue(self, call: Call, task_id: str) -> None:
        span = self._open.pop(id(call), None)
        if span is not None:
            span.set_attribute("messaging.message.id", task_id)
            span.end()

    async def around_run(self, job: Job, call_next: CallNext) -> Any:
        carrier = {k: v for k, v in job.message.headers.items() if isinstance(v, str)}
        parent = propagate.extract(carrier)
        with self.tracer.start_as_current_span(
                f"run {job.name}", context=parent, kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "asyncq", "messaging.operation": "process",
                            "messaging.destination.name": job.queue,
                            "messaging.message.id": job.id, "asyncq.task": job.name,
                            "asyncq.attempt": job.attempt}):
            return await call_next()
