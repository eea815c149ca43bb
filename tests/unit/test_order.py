"""The parallel run's order (tests/_order.py): every test kept once, slow ones first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from tests import _order


@dataclass
class FakeItem:
    nodeid: str


def items(names: list[str]) -> list[Any]:
    return [FakeItem(name) for name in names]


def test_chunk_sizes_are_worksteals_first_hand_out() -> None:
    assert _order.chunk_sizes(10, 4) == [2, 2, 3, 3]
    assert _order.chunk_sizes(943, 4) == [235, 236, 236, 236]
    assert sum(_order.chunk_sizes(7, 3)) == 7


def test_each_chunk_starts_with_its_share_of_the_slow_tests(monkeypatch: Any) -> None:
    monkeypatch.setattr(_order, "SLOW", {"m.py::a": 50, "m.py::b": 40, "n.py::c[x]": 30,
                                         "n.py::d": 20})
    fast = [f"f.py::t{i}" for i in range(16)]
    given = items([*fast[:5], "m.py::a", *fast[5:10], "n.py::c[x]", "n.py::c[y]",
                   "n.py::d", "m.py::b", *fast[10:]])
    ordered = cast(list[FakeItem], _order.deal(given, 4))
    assert sorted(i.nodeid for i in ordered) == sorted(i.nodeid for i in given)
    chunks, start = [], 0
    for size in _order.chunk_sizes(len(ordered), 4):
        chunks.append([i.nodeid for i in ordered[start:start + size]])
        start += size
    assert [chunk[0] for chunk in chunks] == ["m.py::a", "m.py::b", "n.py::c[x]", "n.py::d"]
    # the other tests keep their relative order
    assert [i.nodeid for i in ordered if i.nodeid.startswith("f.py")] == fast


def test_one_process_keeps_the_collection_order(monkeypatch: Any) -> None:
    monkeypatch.setattr(_order, "SLOW", {"m.py::a": 50})
    given = items(["f.py::x", "m.py::a"])
    assert _order.deal(given, 1) == given
    assert _order.weight("m.py::a[param]") == 50
    assert _order.weight("f.py::x") == 0
