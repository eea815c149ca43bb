"""JSON log lines carry the running task's id, name, queue and attempt."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

from asyncq import App, Worker
from asyncq.jsonlog import use_json_logs


async def test_records_in_a_task_carry_its_fields(unique: Callable[[str], str]) -> None:
    stream = io.StringIO()
    log = logging.getLogger(unique("jsonlog"))
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler(stream))
    use_json_logs(log)
    app = App(unique("logs"), broker=f"memory://{unique('m')}")

    @app.task(name="greet", queue="greetings")
    async def greet(who: str) -> None:
        log.info("hello %s", who)

    async with app, Worker(app, concurrency=1):
        handle = await greet.enqueue("\x1b[2Jworld")
        await handle.get(timeout=5)
    log.info("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "hello \x1b[2Jworld"
    assert inside["task_id"] == handle.id
    assert inside["task"] == "greet"
    assert inside["queue"] == "greetings"
    assert inside["attempt"] == 0
    assert inside["level"] == "INFO"
    assert "\x1b" not in stream.getvalue()  # JSON escapes control characters
    assert "task_id" not in outside
