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
