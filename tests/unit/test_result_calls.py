"""How the Redis result backend cuts a batch of writes into script calls: in order, at
most ``per_call`` writes and ``_BYTES_PER_CALL`` bytes of records each (a larger record
alone)."""

from __future__ import annotations

import itertools
import random

import pytest

from asyncq.records import KeyWrite
from asyncq.results.redis import _BYTES_PER_CALL, _script_calls


@pytest.mark.parametrize("seed", range(50))
def test_calls_keep_the_order_and_the_bounds(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.choice((10, 1000, _BYTES_PER_CALL // 3, _BYTES_PER_CALL + 1))
             for _ in range(rng.randrange(0, 40))]
    writes = [KeyWrite(f"k{n}", b"v" * size, 1000, None, True, None)
              for n, size in enumerate(sizes)]
    per_call = rng.choice((1, 3, 500))
    by_key = {w.key: w for w in writes}
    calls = []
    for keys, args in _script_calls(writes, per_call):
        call = [by_key[key] for key in keys]
        assert args == [item for w in call for item in (1000, "1", "", w.value, "")]
        calls.append(call)
    assert [w for call in calls for w in call] == writes
    for call in calls:
        assert 1 <= len(call) <= per_call
        assert len(call) == 1 or sum(len(w.value) for w in call) <= _BYTES_PER_CALL
    for before, after in itertools.pairwise(calls):  # each call as full as it may be
        if len(before) < per_call:
            assert sum(len(w.value) for w in (*before, after[0])) > _BYTES_PER_CALL
