"""Successful runs in an event batch as columns: most of what a busy worker sends.

The worker tells a success in the short row :data:`asyncq.events.SUCCESS_ROW`. In a
batch on the wire each unbroken run of such rows is one *block*, a msgpack array::

    [BLOCK, n, worker, task, queue, attempt, enqueued_at, id, ts, runtime]

where each of the last eight is a column of ``n`` values: a one-item array when every
row has that value (the worker, usually the task, queue, attempt and a missing
``enqueued_at``), the array of the ``n`` values, or, for floats only, ``8 * n`` bytes
of little-endian IEEE doubles (ts and runtime). Packing a row as an array costs
msgpack about 600 instructions plus 150 to 350 a value; a block costs a few tens a
value (the columns are made in C: ``zip``, ``list.count``, ``struct.pack``).

A block is never 12 long, so a reader that knows only :data:`asyncq.events.ROW` skips
it; readers here turn each of its rows back into the same event a full row gives.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from itertools import compress, repeat
from operator import is_not, ne
from typing import Any, Final

__all__ = ["BLOCK", "SHORT", "blocks", "expand", "full_row", "is_block"]

#: The first item of a block.
BLOCK: Final = "asyncq-succeeded"
#: The length of a success row (:data:`asyncq.events.SUCCESS_ROW`).
SHORT: Final = 8
_BLOCK_LEN: Final = 10


def full_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A success row as the full row (:data:`asyncq.events.ROW`) it stands for."""
    ts, task_id, task, queue, attempt, runtime, worker, enqueued_at = row
    return ("task-succeeded", ts, task_id, task, queue, attempt, "SUCCESS", runtime, None,
            None, worker, enqueued_at)


def blocks(events: Sequence[Any]) -> list[Any]:
    """``events`` with each unbroken run of success rows (tuples) as one block."""
    n = len(events)
    if n == 0:
        return []
    try:  # all success rows? (a map is no row: its first key is not a number)
        columns = list(zip(*events, strict=True))
        if len(columns) == SHORT:
            return [_block(columns, n, struct.pack(f"<{n}d", *columns[0]))]
    except (ValueError, TypeError, struct.error):  # not: keep each thing in its place
        pass
    kinds = list(map(type, events))
    sizes = list(map(len, events))
    out: list[Any] = []
    start = 0
    odd = map(max, map(ne, sizes, repeat(SHORT)), map(is_not, kinds, repeat(tuple)))
    for i in compress(range(n), odd):  # what is not a success row: few, found in C
        if i > start:
            out.append(_block(list(zip(*events[start:i], strict=True)), i - start))
        out.append(events[i])
        start = i + 1
    if start < n:
        out.append(_block(list(zip(*events[start:], strict=True)), n - start))
    return out


def _block(columns: list[tuple[Any, ...]], n: int, doubles: bytes | None = None
           ) -> list[Any]:
    ts, ids, task, queue, attempt, runtime, worker, enqueued_at = columns
    return [BLOCK, n, _column(worker, n), _column(task, n), _column(queue, n),
            _column(attempt, n), _column(enqueued_at, n), list(ids),
            _floats(ts, n) if doubles is None else doubles, _floats(runtime, n)]


def _column(values: tuple[Any, ...], n: int) -> list[Any]:
    """One value for all rows, or each row's."""
    return [values[0]] if values.count(values[0]) == n else list(values)


def _floats(values: tuple[Any, ...], n: int) -> bytes | list[Any]:
    """Numbers as doubles (a worker's are floats), anything else as it is."""
    try:
        return struct.pack(f"<{n}d", *values)
    except struct.error:
        return list(values)


def is_block(item: Any) -> bool:
    return isinstance(item, list) and len(item) == _BLOCK_LEN and item[0] == BLOCK


def expand(block: list[Any]) -> Iterator[tuple[Any, ...]]:
    """The full rows (:data:`asyncq.events.ROW`) of a block read from the bus (not
    trusted: a malformed block raises ``ValueError``, ``TypeError`` or ``struct.error``)."""
    n, ids = block[1], block[7]
    if not isinstance(ids, list) or n != len(ids):  # n is as large as the data, at most
        raise ValueError("a block's row count is not its number of ids")
    worker, task, queue, attempt, enqueued_at, ids, ts, runtime = (
        _values(column, n) for column in block[2:])
    for row in zip(ts, ids, task, queue, attempt, runtime, worker, enqueued_at, strict=True):
        yield full_row(row)


def _values(column: Any, n: int) -> Sequence[Any]:
    if isinstance(column, bytes):
        return struct.unpack(f"<{n}d", column)
    if not isinstance(column, list):
        raise TypeError("a block's column is not a list")
    if len(column) == 1 and n != 1:
        return column * n
    return column
