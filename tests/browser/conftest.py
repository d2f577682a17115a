"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium.

Skips, saying why, where the browser or its driver is missing; with ``CI=true`` that is a failure
instead, so CI always runs these tests (``.ci/run`` installs both where ``apt-get`` exists).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")



def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            return f"{path} is missing (apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (make install)"
    return None


@pytest.fixture(scope="session")
def chromium_available() -> None:
    """Skip (fail with CI=true) when the browser, its driver or selenium is missing."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


@pytest.fixture
def browser(chromium_available: None) -> Iterator[Any]:
    """A fresh headless Chromium for one test, quit after it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=900,700",
                 # background tabs keep their timers: the client's pings must run on time
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
