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


def test_task_events_add_exactly_their_two_hooks() -> None:
    added = hooks(pipeline(Events()))
    assert added["before"] == [Events, *BASE["before"]]
    assert added["after"] == [*BASE["after"], Events]
    assert {k: v for k, v in added.items() if k not in ("before", "after")} == \
        {k: v for k, v in BASE.items() if k not in ("before", "after")}


def test_metrics_add_exactly_one_hook() -> None:
    pytest.importorskip("prometheus_client")
    from asyncq.middleware.prometheus import Metrics

    added = hooks(pipeline(Metrics()))  # the run time comes with the outcome
    assert added["before"] == BASE["before"]
    assert added["after"] == [*BASE["after"], Metrics]
    assert added["around"] == BASE["around"]


def test_events_and_metrics_together_add_one_hook() -> None:
    pytest.importorskip("prometheus_client")
    from asyncq.events.observed import Observed, observed
    from asyncq.middleware.prometheus import Metrics

    added = hooks(pipeline(observed(Events(), Metrics())))
    assert added["before"] == BASE["before"]
    assert added["after"] == [*BASE["after"], Observed]
    assert added["around"] == BASE["around"]
    with_started = hooks(pipeline(observed(Events(started=True), Metrics())))
    assert issubclass(with_started["before"][0], Observed)  # task-started events: before_run
