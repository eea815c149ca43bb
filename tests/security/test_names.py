"""Validation at the edge (issue 13): one rule for queue names on every broker."""

from __future__ import annotations

import pytest

import asyncq
from asyncq._names import MAX_QUEUE_NAME

BAD = ["", "a\nb", "nul\x00", "x" * (MAX_QUEUE_NAME + 1), "{tag}", "with space", "é",
       "amq.mine", "a/b"]
GOOD = ["default", "a", "q" * MAX_QUEUE_NAME, "emails.high-1:v2_x"]


@pytest.mark.parametrize("url", ["memory://names", "redis://127.0.0.1:6379/0",
                                 "amqp://guest:guest@127.0.0.1:5672/"])
@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bad_queue_names_are_refused_everywhere(url: str, bad: str) -> None:
    with pytest.raises(asyncq.ConfigurationError, match="queue name"):
        asyncq.App("names", broker=url, default_queue=bad)
    app = asyncq.App("names", broker=url)
    with pytest.raises(asyncq.ConfigurationError, match="queue name"):
        app.task(queue=bad)(_noop)
    with pytest.raises(asyncq.ConfigurationError, match="queue name"):
        asyncq.App("names", broker=url, task_routes={"t": bad})
    with pytest.raises(asyncq.ConfigurationError, match="queue name"):
        asyncq.App("names", broker=url, task_routes={"t": {"queue": bad}})
    task = app.task(_noop)
    with pytest.raises(ValueError, match="queue name"):
        task.options(queue=bad)
    with pytest.raises(ValueError, match="queue name"):
        task.options(countdown=1).options(queue=bad)
    with pytest.raises(asyncq.ConfigurationError, match="queue name"):
        asyncq.Worker(app, [bad])


@pytest.mark.parametrize("good", GOOD)
def test_good_queue_names_pass(good: str) -> None:
    app = asyncq.App("names", broker="memory://names", default_queue=good)
    task = app.task(queue=good)(_noop)
    assert task.options(queue=good).call_options.queue == good
    assert asyncq.Worker(app, [good]).queues == [good]


def test_an_empty_task_id_is_refused() -> None:
    app = asyncq.App("names", broker="memory://names")
    task = app.task(_noop)
    with pytest.raises(ValueError, match="invalid task id"):
        app._preparer.prepare(task.options(task_id="").s())


async def _noop() -> None:
    return None


@pytest.mark.parametrize("priority", [-1, 256, "1", True, 1.5, 10**20])
def test_bad_priorities_are_refused_at_options_time(priority: object) -> None:
    task = asyncq.App("names", broker="memory://names").task(_noop)
    with pytest.raises(ValueError, match="priority"):
        task.options(priority=priority)  # type: ignore[arg-type]
    assert task.options(priority=255).call_options.priority == 255
