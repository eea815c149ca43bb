"""Headless Chromium for the dashboard test: found, installed (Debian, as root), or a
one-line skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1280,900"]


def _binaries() -> tuple[str | None, str | None]:
    return (shutil.which("chromium") or shutil.which("chromium-browser"),
            shutil.which("chromedriver"))


def ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing Debian's packages when missing."""
    browser, driver = _binaries()
    if browser and driver:
        return browser, driver
    can_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if not can_install:
        pytest.skip("dashboard browser test: no chromium/chromedriver and not root with "
                    "apt-get to install them (apt-get install chromium chromium-driver)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        if done.returncode != 0:
            pytest.skip(f"dashboard browser test: `{' '.join(cmd)}` failed: "
                        f"{done.stderr.strip().splitlines()[-1:]}")
    browser, driver = _binaries()
    if not (browser and driver):
        pytest.skip("dashboard browser test: chromium still missing after apt-get install")
    return browser, driver


def chrome() -> Iterator[Any]:
    """A selenium Chrome driver on Debian's chromium, with a fresh profile."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = ensure_chromium()
    profile = tempfile.mkdtemp(prefix="asyncq-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    service = Service(executable_path=driver_path)
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception:  # a loaded machine can miss chromedriver's start-up deadline once
        _reap(service)
        service = Service(executable_path=driver_path)
        driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        _reap(service)
        shutil.rmtree(profile, ignore_errors=True)


def _reap(service: Any) -> None:
    """Wait for chromedriver to exit (selenium may leave it exiting, unreaped)."""
    process = getattr(service, "process", None)
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
