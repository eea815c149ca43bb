"""Successful runs in an event batch as columns: most of what a busy worker sends.

The worker tells a success in the short row :data:`asyncq.events.SUCCESS_ROW`, whose
values an observer keeps as columns (:class:`asyncq.middleware._row.Successes`). In a
batch on the wire each unbroken run of such rows is one *block*, a msgpack array::

    [BLOCK, n, worker, task, queue, attempt, enqueued_at, id, ts, runtime]

where each of the last eight is a column of ``n`` values: a one-item array when every
row has that value (the worker, usually the task, queue, attempt and a missing
``enqueued_at``), the array of the ``n`` values, or, for floats only, ``8 * n`` bytes
of little-endian IEEE doubles (ts and runtime). Packing a row as an array costs
msgpack about 600 instructions plus 150 to 350 a value; a block costs a few tens a
value (the columns are made in C: slices, ``list.count``, ``struct.pack``).

A block is never 12 long, so a reader that knows only :data:`asyncq.events.ROW` skips
it; readers here turn each of its rows back into the same event a full row gives. A
block of version 2 (first item :data:`JOINED`) has the ids as one string joined by
:data:`SEPARATOR` (msgpack packs one string, not ``n``): a reader that knows only
version 1 skips it too (its first item is not :data:`BLOCK`). A worker sends version 1
when an id holds the separator.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from itertools import compress, repeat
from operator import is_not, ne
from typing import Any, Final

from asyncq.middleware._row import SHORT, Successes

__all__ = ["BLOCK", "JOINED", "SEPARATOR", "SHORT", "block", "blocks", "expand", "full_row",
           "is_block"]

#: The first item of a block.
BLOCK: Final = "asyncq-succeeded"
#: The first item of a block of version 2: its ids are one string, joined by
#: :data:`SEPARATOR` (readers that know only :data:`BLOCK` skip it).
JOINED: Final = "asyncq-succeeded-2"
SEPARATOR: Final = "\n"
_BLOCK_LEN: Final = 10


def full_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A success row as the full row (:data:`asyncq.events.ROW`) it stands for."""
    ts, task_id, task, queue, attempt, runtime, worker, enqueued_at = row
    return ("task-succeeded", ts, task_id, task, queue, attempt, "SUCCESS", runtime, None,
            None, worker, enqueued_at)


def blocks(events: Sequence[Any]) -> list[Any]:
    """``events`` with each :class:`~asyncq.middleware._row.Successes` and each unbroken
    run of success rows (tuples) as one block."""
    out: list[Any] = []
    for item in _runs(events):
        out.append(block(item) if type(item) is Successes else item)
    return out


def _runs(events: Sequence[Any]) -> Sequence[Any]:
    """``events`` with each unbroken run of success rows (tuples) as one
    :class:`Successes`; as they are if there is none."""
    n = len(events)
    kinds = list(map(type, events))
    if kinds.count(tuple) == 0:
        return events
    sizes = list(map(len, events))
    odd = list(map(max, map(ne, sizes, repeat(SHORT)), map(is_not, kinds, repeat(tuple))))
    if not any(odd):
        return [Successes.of_rows(list(events))]
    out: list[Any] = []
    start = 0
    for i in compress(range(n), odd):  # what is not a success row: few, found in C
        if i > start:
            out.append(Successes.of_rows(list(events[start:i])))
        out.append(events[i])
        start = i + 1
    if start < n:
        out.append(Successes.of_rows(list(events[start:])))
    return out


def block(rows: Successes) -> list[Any]:
    """Success rows as a block: of version 2 (:data:`JOINED`) when the ids join."""
    n = len(rows)
    ids: Any = rows.ids
    kind = BLOCK
    try:  # no id has the separator in it (``in``: a memchr; ``count`` reads 5x slower)
        if SEPARATOR not in "".join(ids):
            ids, kind = SEPARATOR.join(ids), JOINED
    except TypeError:  # an id that is not a string
        pass
    return [kind, n, _column(rows.workers, n), _column(rows.tasks, n),
            _column(rows.queues, n), _column(rows.attempts, n), _column(rows.sent, n),
            ids, _floats(rows.ts, n), _floats(rows.runs, n)]


def _column(values: list[Any], n: int) -> list[Any]:
    """One value for all rows, or each row's."""
    return [values[0]] if values.count(values[0]) == n else values


def _floats(values: list[Any], n: int) -> bytes | list[Any]:
    """Numbers as doubles (a worker's are floats), anything else as it is."""
    try:
        return struct.pack(f"<{n}d", *values)
    except struct.error:
        return values


def is_block(item: Any) -> bool:
    return isinstance(item, list) and len(item) == _BLOCK_LEN and item[0] in (BLOCK, JOINED)


def expand(block: list[Any]) -> Iterator[tuple[Any, ...]]:
    """The full rows (:data:`asyncq.events.ROW`) of a block read from the bus (not
    trusted: a malformed block raises ``ValueError``, ``TypeError`` or ``struct.error``)."""
    n, ids = block[1], block[7]
    if block[0] == JOINED and isinstance(ids, str):
        ids = block[7] = ids.split(SEPARATOR)
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
