"""docker-compose.yml is valid YAML and describes the whole system (not run here: no
Docker engine in CI; `docker compose up` is for people trying asyncq out)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (it is in the dev extra)")
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"redis", "rabbitmq", "worker", "shop"}
    assert set(compose["volumes"]) == {"redis-data", "rabbitmq-data"}
    for service in compose["services"].values():
        assert "image" in service
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port  # nothing on other interfaces


@pytest.mark.parametrize("name", ["worker", "shop"])
def test_python_services_run_the_example_on_redis(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["environment"]["ASYNCQ_BROKER"] == "redis://redis:6379/0"
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["volumes"] == [".:/src"]
    workdir = ROOT / Path(service["working_dir"]).relative_to("/src")
    assert (workdir / "shop" / "tasks.py").exists()
    shell = service["command"]
    assert shell[:2] == ["sh", "-c"]
    words = shlex.split(shell[2])
    assert words[:3] == ["pip", "install", "-q"]
    started = words[words.index("exec") + 1:]
    target = started[2] if started[0] == "asyncq" else started[1]
    module, _, attr = target.partition(":")
    assert (workdir / (module.replace(".", "/") + ".py")).exists(), target
    assert attr in {"app", "api"}


def test_worker_and_shop_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "exec asyncq worker shop.tasks:app" in services["worker"]["command"][2]
    assert "exec uvicorn shop.api:api --host 0.0.0.0 --port 8000" in services["shop"]["command"][2]
    assert services["shop"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "[fastapi]" in services["shop"]["command"][2]
    # the worker's grace period beats its own shutdown timeout (30 s by default)
    assert float(services["worker"]["stop_grace_period"].rstrip("s")) > 30

