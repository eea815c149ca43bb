"""Coalescer(early=...): a burst's full batches are offered to the owner while the
burst's callers still run (the AMQP publisher writes them at once), in order, and the
runner sends the rest; a refused or failing offer loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from asyncq._batch import Coalescer

Into = Callable[[Sequence[int], Sequence["asyncio.Future[int]"]], object]


class Owner:
    """Records what went early and what the runner sent; settles each item with itself."""

    def __init__(self, take: Callable[[int], bool] = lambda n: True) -> None:
        self.take = take
        self.offers = 0
        self.early: list[list[int]] = []
        self.sent: list[list[int]] = []

    def offer(self, items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> bool:
        self.offers += 1
        if not self.take(self.offers):
            return False
        self.early.append(list(items))
        for item, future in zip(items, futures, strict=True):
            future.set_result(item)
        return True

    async def into(self, items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> None:
        self.sent.append(list(items))
        for item, future in zip(items, futures, strict=True):
            future.set_result(item)


async def _burst(batcher: Coalescer[int, int], n: int) -> list[int]:
    async def call(i: int) -> int:
        return await batcher.future(i)

    return list(await asyncio.gather(*(call(i) for i in range(n))))


async def test_full_batches_go_early_in_order_and_the_runner_sends_the_rest() -> None:
    owner = Owner()
    batcher: Coalescer[int, int] = Coalescer(into=owner.into, early=owner.offer, max_batch=10)
    assert await _burst(batcher, 35) == list(range(35))
    assert owner.early == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
    assert owner.sent == [list(range(30, 35))]


async def test_a_refused_offer_is_offered_again_with_the_next_batch_in_front() -> None:
    owner = Owner(take=lambda offer: offer != 1)  # the first offer is refused
    batcher: Coalescer[int, int] = Coalescer(into=owner.into, early=owner.offer, max_batch=10)
    assert await _burst(batcher, 25) == list(range(25))
    assert owner.offers == 2
    assert owner.early == [list(range(0, 10))]  # taken at 20 gathered: the first ten
    assert owner.sent == [list(range(10, 20)), list(range(20, 25))]


async def test_an_offer_that_raises_leaves_its_batch_to_the_runner() -> None:
    owner = Owner()

    def broken(items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> bool:
        raise RuntimeError("no")

    batcher: Coalescer[int, int] = Coalescer(into=owner.into, early=broken, max_batch=10)
    assert await _burst(batcher, 25) == list(range(25))
    assert owner.sent == [list(range(0, 10)), list(range(10, 20)), list(range(20, 25))]


async def test_nothing_goes_early_while_the_runner_is_sending() -> None:
    """A batch the runner is sending (awaiting its write) must not be overtaken."""
    owner = Owner()
    release = asyncio.Event()

    async def slow_into(items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> None:
        await release.wait()
        await owner.into(items, futures)

    batcher: Coalescer[int, int] = Coalescer(into=slow_into, early=owner.offer, max_batch=10)
    first = asyncio.ensure_future(batcher.submit(-1))
    await asyncio.sleep(0.01)  # the runner is sending -1
    rest = asyncio.ensure_future(_burst(batcher, 20))
    await asyncio.sleep(0.01)
    assert owner.early == []
    release.set()
    assert await first == -1
    assert await rest == list(range(20))
    assert owner.sent[0] == [-1]
    assert owner.early == []


async def test_a_batch_with_a_cancelled_caller_is_left_to_the_runner() -> None:
    owner = Owner()
    batcher: Coalescer[int, int] = Coalescer(into=owner.into, early=owner.offer, max_batch=3)
    first = batcher.future(0)
    batcher.future(1).cancel()
    third = batcher.future(2)  # the third: a full batch, one of them cancelled
    assert owner.offers == 0
    assert (await first, await third) == (0, 2)
    assert owner.sent == [[0, 2]]


def test_early_needs_into() -> None:
    async def flush(items: Sequence[int]) -> list[int]:
        return list(items)

    with pytest.raises(TypeError, match="early with into"):
        Coalescer(flush, early=lambda items, futures: False)


async def test_no_early_batch_overtakes_a_runner_started_while_an_old_one_unwinds() -> None:
    """review8: aclose() cancels a runner that unwinds slowly; a new runner starts
    sending meanwhile. The old runner's end must not let a burst overtake the new one."""
    log: list[tuple[str, list[int]]] = []
    sending = asyncio.Event()

    async def into(items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> None:
        try:
            await asyncio.sleep(10 if list(items) == [-1] else 0.2)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # a clean-up that waits
            raise
        log.append(("sent", list(items)))
        for item, future in zip(items, futures, strict=True):
            future.set_result(item)

    def early(items: Sequence[int], futures: Sequence[asyncio.Future[int]]) -> bool:
        log.append(("early", list(items)))
        for item, future in zip(items, futures, strict=True):
            future.set_result(item)
        return True

    batcher: Coalescer[int, int] = Coalescer(into=into, early=early, max_batch=10)
    stuck = batcher.future(-1)
    await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(batcher.aclose())
    await asyncio.sleep(0)
    first = batcher.future(0)  # a new runner
    await asyncio.sleep(0.01)  # it is sending [0]
    sending.set()
    await asyncio.sleep(0.1)  # the old runner has unwound
    rest = [batcher.future(n) for n in range(1, 20)]
    assert await asyncio.gather(first, *rest) == list(range(20))
    await closing
    with pytest.raises(RuntimeError):
        await stuck
    assert log[0] == ("sent", [0])
    assert [entry for entry in log if entry[0] == "early"] == []
