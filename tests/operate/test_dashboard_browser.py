"""The dashboard in a real browser (headless Chromium) while a worker runs.

Set ASYNCQ_SCREENSHOT=path to also save what the browser shows (docs/images/dashboard.png
is made this way).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from tests.operate.browser import chrome

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">signup"

MODULE = f'''
import asyncio, os
from asyncq import App

app = App(os.environ["T_APP"], broker=os.environ["T_BROKER"])
QUEUE = os.environ["T_QUEUE"]


@app.task(name="emails.send_welcome", queue=QUEUE)
async def send_welcome(user: int) -> str:
    await asyncio.sleep(0.05 * (user % 4))
    return f"sent to {{user}}"


@app.task(name="billing.charge", queue=QUEUE)
async def charge(cents: int) -> None:
    if cents < 0:
        raise ValueError(f"cannot charge {{cents}} cents")


@app.task(name={HOSTILE!r}, queue=QUEUE)
async def hostile() -> None:
    return None
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def driver() -> Iterator[Any]:
    yield from chrome()


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, unique: Callable[[str], str],
          redis_cleanup: Callable[[str], None]) -> Iterator[tuple[str, dict[str, str], Path]]:
    (tmp_path / "dmod.py").write_text(textwrap.dedent(MODULE))
    env = {**os.environ, "T_APP": unique("shop"), "T_BROKER": redis_url,
           "T_QUEUE": unique("web"), "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    redis_cleanup(env["T_QUEUE"])
    port = free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "asyncq", "worker", "dmod:app", "--events",
                          "--heartbeat", "0.5", "-c", "8", "-l", "warning"], cwd=tmp_path,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "asyncq", "dashboard", "dmod:app", "--port",
                          str(port)], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/state", timeout=2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url, env, tmp_path
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # fail, but leave nothing running behind
            proc.kill()
            proc.wait(10)
            raise
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(f"asyncq:events:{{{env['T_APP']}}}", f"asyncq:workers:{{{env['T_APP']}}}")
    client.close()


def enqueue(env: dict[str, str], folder: Path, code: str) -> None:
    program = "import asyncio, dmod\nasync def main():\n    async with dmod.app:\n" + \
        textwrap.indent(textwrap.dedent(code), "        ") + "\nasyncio.run(main())\n"
    subprocess.run([sys.executable, "-c", program], cwd=folder, env=env, check=True,
                   timeout=30)


def wait_text(driver: Any, needle: str, timeout: float = 15) -> str:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element(By.TAG_NAME, "body").text
        if needle in text:
            return str(text)
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not shown; the page says:\n{text}")


def test_dashboard_in_chromium(stack: tuple[str, dict[str, str], Path], driver: Any) -> None:
    from selenium.webdriver.common.by import By

    url, env, folder = stack
    enqueue(env, folder, """
        from asyncq.brokers import Outgoing
        import uuid
        for user in range(12):
            await dmod.send_welcome.enqueue(user)
        await dmod.charge.enqueue(500)
        await dmod.charge.enqueue(-3)
        await dmod.app.tasks[dmod.HOSTILE_NAME].enqueue()
        body = dmod.app.codec.encode(uuid.uuid4().hex, "reports.<b>monthly</b>", [], {}, {}, {})
        await dmod.app.broker.publish(Outgoing(uuid.uuid4().hex, dmod.QUEUE, body))
    """.replace("dmod.HOSTILE_NAME", repr(HOSTILE)))
    driver.get(url + "/")
    for needle in ("online", "emails.send_welcome", "FAILURE", "cannot charge -3 cents"):
        wait_text(driver, needle)  # the page refreshes itself as events arrive
    wait_text(driver, HOSTILE)  # the hostile name, shown as text
    assert driver.title != "pwned"
    assert driver.find_elements(By.CSS_SELECTOR, "main img") == []
    # live: a task sent after the page loaded appears without a reload
    rows_before = len(driver.find_elements(By.CSS_SELECTOR, "main tbody tr"))
    enqueue(env, folder, "await dmod.send_welcome.enqueue(99)")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(driver.find_elements(By.CSS_SELECTOR, "main tbody tr")) > rows_before:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the page did not update by itself")
    if os.environ.get("ASYNCQ_SCREENSHOT"):
        driver.save_screenshot(os.environ["ASYNCQ_SCREENSHOT"])
    # a task's detail page and the dead letters with their reason
    driver.find_element(By.CSS_SELECTOR, "main tbody a code").click()
    wait_text(driver, "recorded state")
    driver.get(f"{url}/dead/{env['T_QUEUE']}")
    text = wait_text(driver, "unknown task")
    assert "reports.<b>monthly</b>" in text
    assert driver.find_elements(By.CSS_SELECTOR, "main b") == []
    assert "Read-only" in text
