"""Success rows (asyncq.events.SUCCESS_ROW): on the wire as blocks of columns, readers
give the same events as for full rows (asyncq.events.ROW), which they still read; the
metrics fold counts them as it counts full rows."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest

from asyncq.events import ROW, SUCCESS_ROW, as_event, pack_events, unpack_events
from asyncq.events._block import BLOCK, JOINED, blocks, full_row

T0 = 1_760_000_000.0


def short(n: int, *, task: str = "t.ok", queue: str = "q", runtime: float = 0.001,
          sent: Any = None, worker: str = "1@h", attempt: int = 1) -> tuple[Any, ...]:
    return (T0 + n, f"id-{n}", task, queue, attempt, runtime, worker, sent)


def failed(n: int, *, runtime: float | None = 0.5, delay: float | None = None,
           sent: Any = None) -> tuple[Any, ...]:
    kind, state = ("task-retried", "RETRY") if delay is not None else ("task-failed", "FAILURE")
    return (kind, T0 + n, f"id-{n}", "t.bad", "q", 1, state, runtime, "ValueError: no", delay,
            "1@h", sent)


def old_batch(events: list[Any]) -> bytes:
    """A batch as a worker before success rows packed it: every row in full."""
    full = [full_row(e) if isinstance(e, tuple) and len(e) == len(SUCCESS_ROW) else e
            for e in events]
    return bytes(msgpack.packb(full, use_bin_type=True, default=str))


def test_a_success_row_is_the_event_of_its_full_row() -> None:
    row = short(1, sent=T0 - 1)
    event = as_event(row)
    assert event == as_event(full_row(row))
    assert event == {"type": "task-succeeded", "ts": T0 + 1, "id": "id-1", "task": "t.ok",
                     "queue": "q", "attempt": 1, "state": "SUCCESS", "runtime": 0.001,
                     "worker": "1@h", "enqueued_at": T0 - 1}
    assert list(event) == [k for k in ROW if k not in ("error", "delay")]  # the same order


def test_old_and_new_batches_give_the_same_events_in_order() -> None:
    events: list[Any] = [
        {"type": "worker-heartbeat", "ts": T0, "worker": "1@h"},
        *[short(n, runtime=0.001 * n) for n in range(5)],
        failed(5),
        short(6, task="t.other", queue="q2", sent=T0),
        short(7, sent="not a time", worker="2@h", attempt=3),
        {"type": "task-dead-lettered", "id": "x", "ts": T0},
        *[short(n) for n in range(8, 12)],
    ]
    new = unpack_events(pack_events(events))
    assert new == unpack_events(old_batch(events))
    assert [e["id"] for e in new if "id" in e] == [
        *[f"id-{n}" for n in range(8)], "x", *[f"id-{n}" for n in range(8, 12)]]
    assert new[7]["enqueued_at"] == T0
    assert new[8]["enqueued_at"] == "not a time"
    assert (new[8]["worker"], new[8]["attempt"]) == ("2@h", 3)


def test_success_rows_travel_as_blocks_that_old_readers_skip() -> None:
    events = [short(n, runtime=0.25 * n) for n in range(500)]
    packed = pack_events(events)
    value = msgpack.unpackb(packed, raw=False)
    assert [(item[0], len(item) != len(ROW)) for item in value] == [(JOINED, True)]
    assert as_event(value[0]) is None  # not a row: a reader that knows no block skips it
    assert len(packed) < len(old_batch(events)) / 2
    got = unpack_events(packed)
    assert [e["runtime"] for e in got] == [0.25 * n for n in range(500)]  # exact doubles
    assert [e["ts"] for e in got] == [T0 + n for n in range(500)]
    assert got == [as_event(e) for e in events]


def test_blocks_keep_everything_that_is_not_a_success_row_in_place() -> None:
    events: list[Any] = [short(0), {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7,
                                    "h": 8}, short(1), short(2), failed(3), short(4)]
    out = blocks(events)
    assert [item[0] if isinstance(item, list) else item for item in out] == [
        JOINED, events[1], JOINED, events[4], JOINED]
    assert [item[1] for item in out if isinstance(item, list)] == [1, 2, 1]


@pytest.mark.parametrize("block", [
    [BLOCK, 2, ["w"], ["t"], ["q"], [1], [None], ["a"], [1.0, 2.0], [0.1, 0.2]],  # 2 rows, 1 id
    [BLOCK, 1, ["w"], ["t"], ["q"], [1], [None], ["a"], b"\x00" * 7, [0.1]],  # short bytes
    [BLOCK, 2, ["w"], ["t", "u", "v"], ["q"], [1], [None], ["a", "b"], [1.0], [0.1]],
    [BLOCK, 1, "w", ["t"], ["q"], [1], [None], ["a"], [1.0], [0.1]],  # not a column
])
def test_a_malformed_block_gives_no_events(block: list[Any]) -> None:
    raw = bytes(msgpack.packb([block, {"type": "x"}], use_bin_type=True))
    assert unpack_events(raw) == [{"type": "x"}]


def _stats(rows: list[Any]) -> dict[Any, Any]:
    from asyncq.middleware._runstats import RunStats

    stats = RunStats()
    stats.add(rows)
    return {key: (s.kinds, s.retries, s.run, s.run_sum, s.wait, s.wait_sum)
            for key, s in stats._series.items()}


def test_the_fold_counts_success_rows_as_their_full_rows() -> None:
    pytest.importorskip("prometheus_client")
    runs = [0.0001, 0.004, 0.005, 0.0051, 0.3, 0.3, 2.0, 11.0, 0.02]
    mix: list[Any] = [short(n, runtime=r, sent=T0 + n - 0.1 * n) for n, r in enumerate(runs)]
    mix += [short(20, task="t.two", runtime=0.07, sent=T0 + 21),  # stamped after: wait 0
            short(21, task="t.two", runtime=0.07, sent="garbage"),  # no wait
            short(22, queue="q2", runtime=math.inf), failed(23), failed(24, delay=2.0),
            failed(25, runtime=None), short(26, task="t.two", runtime=0.0)]
    folded = _stats(mix)
    assert folded == _stats([full_row(r) if len(r) == len(SUCCESS_ROW) else r for r in mix])
    ok = folded[("t.ok", "q")]
    assert ok[0] == {"task-succeeded": 9}
    assert ok[2] == [3, 1, 1, 0, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 1]  # a bound is in its bucket
    assert ok[3] == pytest.approx(sum(runs))
    assert sum(ok[4]) == 9
    two = folded[("t.two", "q")]
    assert two[0] == {"task-succeeded": 3}
    assert (two[4][0], sum(two[4])) == (1, 1)
    bad = folded[("t.bad", "q")]
    assert (bad[0], bad[1]) == ({"task-failed": 2, "task-retried": 1}, 1)
    assert folded[("t.ok", "q2")][2][-1] == 1  # an infinite run time: the +Inf bucket


def test_the_fold_of_one_bucket_and_of_many() -> None:
    pytest.importorskip("prometheus_client")
    from asyncq.middleware._runstats import BUCKETS

    quick = _stats([short(n, runtime=1e-6 * n) for n in range(1000)])[("t.ok", "q")]
    assert quick[2] == [1000] + [0] * (len(BUCKETS) - 1)
    spread = [short(n, runtime=b) for n, b in enumerate(BUCKETS[:-1] * 3)]
    folded = _stats(spread)[("t.ok", "q")]
    assert folded[2] == [3] * (len(BUCKETS) - 1) + [0]  # a bound is in its own bucket


def test_the_ids_of_a_block_go_as_one_string_unless_one_holds_the_separator() -> None:
    plain = [short(n) for n in range(3)]
    odd = [*plain, (T0, "id\nwith a newline", "t.ok", "q", 1, 0.001, "1@h", None)]
    (joined,), (listed,) = blocks(plain), blocks(odd)
    assert (joined[0], joined[7]) == (JOINED, "id-0\nid-1\nid-2")
    assert (listed[0], listed[7]) == (BLOCK, [row[1] for row in odd])
    for events in (plain, odd):
        assert unpack_events(pack_events(events)) == [as_event(e) for e in events]
    # a block of version 1, as a worker before version 2 sends it, is still read
    old = [BLOCK, *joined[1:7], ["id-0", "id-1", "id-2"], *joined[8:]]
    assert unpack_events(bytes(msgpack.packb([old], use_bin_type=True))) == [
        as_event(e) for e in plain]


def test_a_joined_block_with_the_wrong_number_of_ids_gives_no_events() -> None:
    (joined,) = blocks([short(n) for n in range(3)])
    joined[7] = "id-0\nid-1"
    raw = bytes(msgpack.packb([joined, {"type": "x"}], use_bin_type=True))
    assert unpack_events(raw) == [{"type": "x"}]


def test_an_observers_values_round_trip_to_the_events_of_their_rows() -> None:
    """What the worker tells (success values, full rows padded) -> drain -> the bus's
    batches -> readers: the events of the rows told, in order; the fold counts them
    as it counts the rows."""
    from asyncq.events import chunks
    from asyncq.middleware._row import ENQUEUED_AT, PAD, Successes, drain

    told: list[Any] = [short(n, runtime=0.001 * n, sent=T0 - 1 if n % 3 else None)
                       for n in range(700)]
    told[300:300] = [failed(300), failed(301, delay=1.0)]
    told.append(failed(999, runtime=None))
    outcomes: list[Any] = []
    for row in told:  # as the worker tells them: a success with its message's headers
        headers = {} if row[-1] is None else {"other": 1, ENQUEUED_AT: row[-1]}
        outcomes.extend((*row[:-1], headers) if len(row) == len(SUCCESS_ROW)
                        else (row, *PAD))
    items = drain(outcomes)
    assert outcomes == []
    assert [type(i) for i in items] == [Successes, tuple, tuple, Successes, tuple]
    batches = chunks(items, 500)
    assert [sum(len(i) if isinstance(i, Successes) else 1 for i in b) for b in batches] == [
        500, 203]
    got = [e for b in batches for e in unpack_events(pack_events(b))]
    assert got == [as_event(e) for e in told]
    pytest.importorskip("prometheus_client")
    folded, expected = _stats(items), _stats(told)
    assert folded.keys() == expected.keys()
    for key, (kinds, retries, run, run_sum, wait, wait_sum) in expected.items():
        assert folded[key] == (kinds, retries, run, pytest.approx(run_sum), wait,
                               pytest.approx(wait_sum))  # sums added in another order


def test_stamps_come_from_any_mapping_of_headers() -> None:
    from types import MappingProxyType

    from asyncq.middleware._row import ENQUEUED_AT, stamps

    assert stamps([{}, {ENQUEUED_AT: T0}]) == [None, T0]
    assert stamps([{ENQUEUED_AT: T0}, MappingProxyType({ENQUEUED_AT: 2.0})]) == [T0, 2.0]


def test_a_full_event_buffer_drops_the_oldest_events_counting_rows_of_columns() -> None:
    from asyncq.events import rows_of
    from asyncq.events.monitor import Drops, _Side
    from asyncq.middleware._row import Successes

    side = _Side(Any, Any, 2.0, Drops(), limit=5)  # type: ignore[arg-type]
    first = {"type": "worker-online"}
    side.keep([first, Successes.of_rows([short(n) for n in range(3)])])
    assert (side.count, side.drops.count) == (4, 0)
    side.keep([failed(3), Successes.of_rows([short(n) for n in range(4, 7)])])
    assert (side.count, side.drops.count) == (5, 3)  # the map and two rows of the first
    kept = [row for item in side.take() for row in rows_of(item)]
    assert kept == [short(2), failed(3), short(4), short(5), short(6)]
    assert (side.count, side.take()) == (0, [])


async def test_events_alone_take_outcomes_on_their_own_loop_bounded_by_the_buffer() -> None:
    """The observer's list has no bound: Events alone move it into the bounded buffer
    every 0.25 s by a loop that no send waits for."""
    import asyncio

    from asyncq.events.monitor import Events, _Side

    events = Events()
    side = _Side(Any, Any, 2.0, events.drops, limit=5)  # type: ignore[arg-type]
    side.source = events.source
    for n in range(10):
        events.outcomes.extend((*short(n)[:-1], {}))
    loop = asyncio.create_task(side.collect_loop())
    await asyncio.sleep(0.4)
    loop.cancel()
    assert events.outcomes == []
    assert (side.count, events.drops.count) == (5, 5)
    assert [row[1] for item in side.take() for row in item.rows()] == [
        f"id-{n}" for n in range(5, 10)]
