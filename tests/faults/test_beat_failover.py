"""F6 beat: two ``asyncq beat`` and one ``asyncq worker --beat`` for 60 s with a 1 s
entry, on Redis and on RabbitMQ, with and without the leader SIGKILLed at 20 s (the
default lease, 5 s). Every tick must be enqueued exactly once; the figures (ticks
enqueued, duplicated, missed, handover time) go to ``results/beat.json``.

    ./scripts/test tests/faults/test_beat_failover.py -m faults
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.beat_harness import Fleet, run_fleet, tick_figures

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

RESULTS = Path(__file__).resolve().parent / "results" / "beat.json"
SECONDS = float(os.environ.get("F6_SECONDS", "60"))
KILL_AT = float(os.environ.get("F6_KILL_AT", "20"))
LEASE = 5.0


@pytest.fixture(params=["redis", "amqp"])
async def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fleet]:
    url = request.getfixturevalue("redis_url" if request.param == "redis" else "amqp_url")
    fleet = Fleet(url, tmp_path)
    yield fleet
    fleet.kill()
    await fleet.cleanup()


@pytest.mark.parametrize("kill", [False, True], ids=["steady", "leader-killed"])
async def test_every_tick_is_enqueued_once(fleet: Fleet, kill: bool) -> None:
    figures = run_fleet(fleet, seconds=SECONDS, kill_at=KILL_AT if kill else None,
                        lease=LEASE)
    ids = await fleet.tick_ids()
    figures.update(tick_figures(ids), seconds=SECONDS, tick_ids=sorted(ids))
    scenario = f"{fleet.broker.split(':', 1)[0]}-{'leader-killed' if kill else 'steady'}"
    _record(scenario, figures)
    assert figures["duplicated"] == 0, figures
    assert figures["missed"] == 0, figures
    assert figures["enqueued"] >= SECONDS - 5, figures
    if kill:
        assert figures["handover_s"] <= LEASE * 4 / 3 + 1, figures


def _record(scenario: str, figures: dict[str, object]) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[scenario] = figures
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
