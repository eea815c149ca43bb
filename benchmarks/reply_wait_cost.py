"""The reply wait alone, in instructions per wait, before and after.

    python benchmarks/reply_wait_cost.py --before /path/to/old/tree --after . [--waits 8000]

``fanin_cost.py`` counts a whole awaited call and moves by ±10 % with the machine's
load (it follows timing). This counts only the part of it on the reply channel, with
no broker traffic per wait: ``--waits`` handles' waits, stamped while the channel is
live (``wait_mine`` with ``since``), each resolved by a reply handed to the listener
as its reader would (``_on_message``), under ``valgrind --tool=callgrind``, minus a
run of 0 waits. Far steadier (two runs of one tree agreed within 0.3 %), so a change
of a few hundred instructions in the wait shows. The figure includes this harness's
own tasks and ids (most of it): compare trees, do not read it alone.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PROGRAM = '''
import asyncio, sys, time, uuid
import asyncq
from asyncq.message import new_id, process_token
from asyncq.records import encode_success
from asyncq.results._listener import REPLY_PREFIX

async def main(n: int, broker: str) -> None:
    app = asyncq.App(f"waitcost{uuid.uuid4().hex[:6]}", broker=broker)
    async with app:
        backend, listener = app.backend, app.backend._listener
        channel = REPLY_PREFIX + process_token()
        keep_id = new_id()  # a wait that subscribes the channel and keeps it live
        keeper = asyncio.ensure_future(listener.wait_mine(keep_id, channel, None))
        while listener._live is None:
            await asyncio.sleep(0.01)
        raw = encode_success(1, 1, "t", time.time())
        since = backend.generation
        ids = [new_id() for _ in range(n)]
        replies = [backend.key_for(i).encode() + b" " + raw for i in ids]

        async def one(task_id: str) -> bytes:
            return await listener.wait_mine(task_id, channel, since)

        waits = [asyncio.ensure_future(one(i)) for i in ids]
        await asyncio.sleep(0)
        for reply in replies:
            listener._on_message(channel, reply)
        assert await asyncio.gather(*waits) == [raw] * n
        assert len(listener._mine) == 1
        listener._on_message(channel, backend.key_for(keep_id).encode() + b" " + raw)
        await keeper

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
'''


def count(tree: Path, waits: int, broker: str, program: Path) -> int:
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, str(program), str(waits), broker],
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
        capture_output=True, text=True, check=True, timeout=600)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr}")
    return int(found.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--before", type=Path)
    p.add_argument("--waits", type=int, default=8000)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    args = p.parse_args()
    sides = {"before": args.before, "after": args.after}
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "program.py"
        program.write_text(PROGRAM)
        for name, tree in sides.items():
            if tree is None:
                continue
            tree = tree.resolve()
            subprocess.run([sys.executable, str(program), "0", args.broker],  # the .pyc files
                           env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=True)
            none = count(tree, 0, args.broker, program)
            some = count(tree, args.waits, args.broker, program)
            print(f"{name}: {(some - none) / args.waits:,.0f} instructions per wait")


if __name__ == "__main__":
    main()
