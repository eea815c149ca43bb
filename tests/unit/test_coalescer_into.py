"""Coalescer(into=...): the owner settles the callers' futures itself, possibly after
the flush returned (the AMQP publisher does, once the publisher confirms come)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from asyncq._batch import Coalescer


async def test_into_settles_later_in_order_and_skips_cancelled_callers() -> None:
    batches: list[list[int]] = []
    later: list[tuple[list[int], Sequence[asyncio.Future[int]]]] = []

    async def into(items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> None:
        batches.append(list(items))
        later.append((list(items), futures))  # settled after the flush returned

    batcher: Coalescer[int, int] = Coalescer(into=into)
    first = batcher.future(1)
    gone = batcher.future(2)
    third = batcher.future(3)
    gone.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert batches == [[1, 3]]
    for items, futures in later:
        for item, future in zip(items, futures, strict=True):
            future.set_result(item * 10)
    assert (await first, await third) == (10, 30)
    many = asyncio.ensure_future(batcher.submit_many([4, 5]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later[-1][1][0].set_result(40)
    later[-1][1][1].set_exception(ValueError("five"))
    outcomes = await many
    assert outcomes[0] == 40
    assert isinstance(outcomes[1], ValueError)


async def test_into_raising_fails_what_it_left_unsettled() -> None:
    async def into(items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> None:
        futures[0].set_result(1)
        raise OSError("wire cut")

    batcher: Coalescer[int, int] = Coalescer(into=into)
    one, two = batcher.future(1), batcher.future(2)
    assert await one == 1
    with pytest.raises(OSError, match="wire cut"):
        await two


async def test_flush_or_into_one_of_them() -> None:
    async def flush(items: Sequence[int]) -> list[int]:
        return list(items)

    async def into(items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> None:
        return None

    with pytest.raises(TypeError):
        Coalescer(flush, into=into)
    with pytest.raises(TypeError):
        Coalescer()
