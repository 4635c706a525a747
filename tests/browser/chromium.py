"""Headless Chromium and tesseract for the browser tests: Debian's chromium, chromium-driver and
tesseract-ocr (`make setup-browser`). The tests are skipped on a developer's machine without
them, never in CI, where `make test` installs them."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER, TESSERACT = "/usr/bin/chromium", "/usr/bin/chromedriver", "tesseract"

needs_browser = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER) and shutil.which(TESSERACT))
    and not os.environ.get("CI"),
    reason="needs Debian's chromium, chromium-driver and tesseract-ocr: `make setup-browser`",
)


@contextmanager
def chromium(
    profile: Path, *, flags: tuple[str, ...] = (), phone: dict[str, Any] | None = None
) -> Iterator[Any]:
    """A headless Chromium driven by Selenium, quit however the test ends. `phone`: Chrome's
    mobile emulation device metrics (CSS width, height, pixel ratio)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *flags,
    ):
        options.add_argument(flag)
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": phone})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def whole_page_screenshot(browser: Any, path: Path) -> Path:
    """The whole page as rendered (not only the first screen), as a PNG."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def ocr(image: Path) -> str:
    """What a person sees: tesseract's reading of the screenshot, spaces collapsed."""
    text = subprocess.run(
        [TESSERACT, str(image), "stdout", "--psm", "4"],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    ).stdout
    return re.sub(r"\s+", " ", text)
