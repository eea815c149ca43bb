"""When the worker's fetch loop reads: at once, or after the settles on their way.

A fan-in (a producer awaiting the tasks it sends) keeps a backlog in the queue while
the worker's room comes back one settle at a time; reading into whatever room the last
settle freed kept every read as small as that settle (100 of 200 at concurrency 100),
where a drain reads the whole room. With a backlog, a read into half the room or less
waits for the settles on their way when they will free more than half; it never waits
for room that only long-running tasks hold, nor without a backlog (a lone task is read
at once).
"""

from __future__ import annotations

import pytest

import asyncq


class _Settling:
    def __init__(self, settling: int) -> None:
        self.settling = settling


@pytest.mark.parametrize(("backlog", "free", "settling", "waits"), [
    (True, 100, 100, True),     # half the room free, the other half being settled: wait
    (True, 40, 100, True),
    (True, 100, 0, False),      # nothing being settled: no room is coming, read now
    (True, 50, 10, False),      # the rest is held by running tasks: read what fits now
    (True, 120, 80, False),     # more than half free: read now
    (False, 100, 100, False),   # no backlog (the last read was not full): read now
])
def test_a_read_waits_only_for_room_that_is_on_its_way(
        backlog: bool, free: int, settling: int, waits: bool) -> None:
    app = asyncq.App("fetchroom", broker="memory://fetchroom")
    worker = asyncq.Worker(app, concurrency=100)  # room: 100 running + 100 prefetched
    worker._backlog = backlog  # type: ignore[attr-defined]
    worker._settler = _Settling(settling)  # type: ignore[assignment]
    assert worker._read_later(free) is waits  # type: ignore[attr-defined]


def test_only_reads_that_are_round_trips_wait_for_room() -> None:
    """RabbitMQ pushes deliveries ahead (a fetch takes them from memory): waiting there
    would only delay messages already here."""
    from asyncq.brokers.amqp._consumer import AmqpConsumer
    from asyncq.brokers.redis._consumer import RedisConsumer

    assert RedisConsumer.fetch_is_a_round_trip
    assert not AmqpConsumer.fetch_is_a_round_trip
