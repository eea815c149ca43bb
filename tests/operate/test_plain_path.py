"""Events, heartbeats and metrics are nowhere in a task's path unless installed, and
installed they add only their own hooks."""

from __future__ import annotations

from typing import Any

import pytest

from asyncq import App
from asyncq.events.monitor import Events, Heartbeats
from asyncq.middleware import Middleware, Pipeline


def pipeline(*middleware: Middleware) -> Pipeline:
    app = App("plain", broker="memory://plain", middleware=list(middleware))

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    return Pipeline(app.run_middleware(), add)


def hooks(pipe: Pipeline) -> dict[str, list[Any]]:
    """The middleware classes on each hook of ``pipe``, in calling order."""
    return {name: [type(mw) for mw in getattr(pipe, name)] for name in
            ("checks", "before", "around", "success", "retry_hooks", "failure", "after")}


BASE = hooks(pipeline())


def test_heartbeats_and_control_cost_nothing_per_task() -> None:
    plain = pipeline(Heartbeats())
    assert hooks(plain) == BASE


def test_task_events_add_no_hook_and_one_outcome_buffer() -> None:
    events = Events()
    plain = pipeline(events)
    assert hooks(plain) == BASE
    assert plain.sinks == [events.outcomes]
    started = hooks(pipeline(Events(started=True)))  # task-started events: before_run
    assert started["before"] == [Events, *BASE["before"]]


def test_metrics_add_no_hook_and_one_outcome_buffer() -> None:
    pytest.importorskip("prometheus_client")
    from asyncq.middleware.prometheus import Metrics

    metrics = Metrics()
    plain = pipeline(metrics)  # the run time comes with the outcome
    assert hooks(plain) == BASE
    assert plain.sinks == [metrics.outcomes]


def test_events_and_metrics_together_share_one_outcome_buffer() -> None:
    pytest.importorskip("prometheus_client")
    from asyncq.events.observed import Observed, observed
    from asyncq.middleware.prometheus import Metrics

    both = observed(Events(), Metrics())
    plain = pipeline(both)
    assert hooks(plain) == BASE
    assert plain.sinks == [both.outcomes]
    with_started = hooks(pipeline(observed(Events(started=True), Metrics())))
    assert with_started["before"] == [Observed, *BASE["before"]]
