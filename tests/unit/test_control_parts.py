"""Records with extras, the REVOKED tag, and the bounded revoked-id set."""

from __future__ import annotations

import time

import pytest

import asyncq
from asyncq import codec
from asyncq.control import Revocation, RevokedSet
from asyncq.errors import DecodeError
from asyncq.records import (
    FINAL_TAGS,
    SETTLED_TAGS,
    Progress,
    ResultRecord,
    decode_record,
    encode_record,
    lua_prelude,
    may_replace,
)
from asyncq.states import TaskState


def test_a_record_without_extras_keeps_the_old_eight_item_body() -> None:
    record = ResultRecord(TaskState.SUCCESS, 5, attempt=1, task="t", finished_at=1.0)
    raw = encode_record(record)
    assert codec.loads(raw[1:]) == [1, 5, None, None, None, 1, "t", 1.0]
    assert decode_record(raw) == record


def test_progress_and_eta_travel_in_an_optional_ninth_item() -> None:
    record = ResultRecord(TaskState.STARTED, progress=Progress(3, 10), task="t")
    raw = encode_record(record)
    assert codec.loads(raw[1:])[8] == {"progress": [3, 10]}
    assert decode_record(raw).progress == Progress(3, 10)
    scheduled = ResultRecord(TaskState.SCHEDULED, eta=1234.5)
    assert decode_record(encode_record(scheduled)).eta == 1234.5
    # unknown extras (a later version's) are ignored
    raw = b"s" + codec.dumps([1, None, None, None, None, 0, None, None, {"later": 1}])
    assert decode_record(raw).state is TaskState.STARTED


@pytest.mark.parametrize("extras", [
    [1], {"progress": "half"}, {"progress": [1]}, {"progress": [True, 2]}, {"eta": "soon"}])
def test_bad_extras_are_refused(extras: object) -> None:
    raw = b"s" + codec.dumps([1, None, None, None, None, 0, None, None, extras])
    with pytest.raises(DecodeError):
        decode_record(raw)


def test_revoked_is_final_settled_and_nothing_replaces_it() -> None:
    raw = encode_record(ResultRecord(TaskState.REVOKED, error_type="Revoked"))
    assert raw[:1] == b"V"
    assert raw[0] in FINAL_TAGS
    assert raw[0] in SETTLED_TAGS
    assert "[86]=true" in lua_prelude()  # ord("V")
    assert decode_record(raw).ready
    assert not may_replace(raw, final=False)  # a progress or retry record
    assert not may_replace(raw, final=True)
    started = encode_record(ResultRecord(TaskState.STARTED))
    assert may_replace(started, final=True)
    assert TaskState.REVOKED.ready


def test_progress_fraction() -> None:
    assert Progress(1, 4).fraction == 0.25
    assert Progress(1).fraction is None
    assert Progress(1, 0).fraction is None
    assert asyncq.Progress is Progress


def test_the_revoked_set_is_bounded_and_expires() -> None:
    now = time.time()
    kept = RevokedSet(window=60, max_entries=3)
    for n in range(5):
        assert kept.add(Revocation(f"id{n}", at=now))
    assert len(kept) == 3
    assert "id0" not in kept
    assert "id4" in kept
    assert not kept.add(Revocation("old", at=now - 61))  # already past its window
    assert "old" not in kept
    short = RevokedSet(window=0.05)
    short.add(Revocation("soon", at=time.time()))
    assert "soon" in short
    time.sleep(0.06)
    assert "soon" not in short


@pytest.mark.parametrize("data", [b"", codec.dumps(["id", "yes", 1.0]),
                                  codec.dumps(["bad id", False, 1.0]), codec.dumps({"a": 1})])
def test_malformed_revocations_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Revocation.decode(data)


def test_revocations_round_trip() -> None:
    entry = Revocation("abc", True, 12.5)
    assert Revocation.decode(entry.encode()) == entry


async def test_revoke_and_rate_limits_follow_a_swapped_broker() -> None:
    from asyncq.testing import use_memory, worker

    app = asyncq.App("swapped", broker="redis://127.0.0.1:1/0")  # nothing listens there
    ran: list[int] = []

    @app.task(rate_limit="100/s")
    async def work(n: int) -> int:
        ran.append(n)
        return n

    with use_memory(app):
        async with app:
            doomed = await work.enqueue(1)
            await app.revoke(doomed.id)
            async with worker(app):
                assert await (await work.enqueue(2)).get(timeout=5) == 2
                with pytest.raises(asyncq.TaskRevoked):
                    await doomed.get(timeout=5)
    assert ran == [2]
