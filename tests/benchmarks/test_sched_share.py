"""sched_share.py (``core.py --sched``): where a phase's time went, per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import redis

from tests._modules import load_file

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "benchmarks" / "core.py"

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(),
                                reason="reads Linux /proc")


def _module() -> ModuleType:
    return load_file("sched_share", "benchmarks/sched_share.py")


def test_a_busy_process_shows_its_cpu_and_an_idle_one_none() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)  # past its start-up
        phase = _module().Phase({"me": os.getpid(), "sleeper": sleeper.pid})
        start = time.perf_counter()
        end = time.process_time() + 0.2
        while time.process_time() < end:  # 0.2 s of CPU here
            pass
        report = phase.report(1000, time.perf_counter() - start)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert report is not None
    me, sleeper_figures = report["me"], report["sleeper"]
    assert 150 <= me["cpu_us_per_task"] <= 1000  # 200 us of CPU per "task", with slack
    assert me["cpu_cores"] > 0.2
    assert sleeper_figures["cpu_us_per_task"] < 5
    assert 0 <= report["idle_cores"] <= (os.cpu_count() or 1)


def test_a_process_gone_reports_nothing_used() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    report = _module().Phase({"gone": gone.pid}).report(10, 0.1)
    assert report is not None
    assert report["gone"]["cpu_us_per_task"] == 0


def test_core_reports_each_process_of_a_fan_in_on_uvloop_with_timeouts(
        redis_url: str, tmp_path: Path) -> None:
    server = redis.Redis.from_url(redis_url)
    try:
        broker_pid = int(server.info("server")["process_id"])
    finally:
        server.close()
    if not Path(f"/proc/{broker_pid}").is_dir():
        pytest.skip("the Redis server is not a local process")
    out = tmp_path / "core.json"
    result = subprocess.run(
        [sys.executable, str(CORE), "--broker", redis_url, "--drain", "300",
         "--enqueue", "300", "--round-trip", "30", "--concurrency", "20", "--fan-in", "300",
         "--inflight", "50", "--sched", "--broker-pid", str(broker_pid), "--uvloop",
         "--fan-in-timeout", "30",
         "--json", str(out)],
        capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["producer_loop"] == "uvloop"
    assert figures["fan_in"]["timeout"] == 30  # its calls awaited handle.get(timeout=30)
    assert set(figures["enqueue_concurrent"]["sched"]) == {"idle_cores", "producer", "broker"}
    for phase in ("drain", "fan_in"):
        sched = figures[phase]["sched"]
        assert set(sched) == {"idle_cores", "producer", "broker", "worker"}, phase
        for name in ("producer", "broker", "worker"):
            assert sched[name]["waiting_us_per_task"] >= 0, (phase, name)
    # (a drain of 300 may be over before its clock starts; the fan-in's calls start after)
    for name in ("producer", "broker", "worker"):
        assert figures["fan_in"]["sched"][name]["cpu_us_per_task"] > 0, name
