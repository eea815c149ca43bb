"""Ids start with the process token that routes their results to the sending process."""

from __future__ import annotations

import os
import warnings

from asyncq.message import new_id, new_ids, process_token, valid_id


def test_ids_start_with_the_process_token_and_a_child_gets_its_own() -> None:
    token = process_token()
    assert len(token) == 8
    assert int(token, 16) >= 0
    ids = [new_id() for _ in range(50)] + new_ids(20)
    assert all(len(i) == 32 and i.startswith(token) and valid_id(i) for i in ids)
    assert len(set(ids)) == 70
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns of forking a process that has threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report its token and leave at once
        os.write(write, process_token().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 8).decode()
    os.close(read)
    os.close(write)
    assert len(child) == 8
    assert child != token


def test_a_child_makes_none_of_the_ids_its_parent_made_ahead() -> None:
    new_id()  # the parent has ids made ahead now
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: its next ids, then leave at once
        os.write(write, "".join(new_id() for _ in range(300)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    raw = os.read(read, 300 * 32).decode()
    os.close(read)
    os.close(write)
    child = {raw[i : i + 32] for i in range(0, len(raw), 32)}
    parent = {new_id() for _ in range(300)}
    assert len(child) == 300
    assert all(i.startswith(process_token()) for i in parent)
    assert not any(i.startswith(process_token()) for i in child)
    assert not child & parent


def test_ids_made_from_threads_at_once_are_all_different() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(lambda _: [new_id() for _ in range(2000)], range(8)))
    ids = [i for batch in batches for i in batch]
    assert len(set(ids)) == len(ids) == 16000
