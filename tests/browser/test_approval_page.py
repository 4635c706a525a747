"""A real browser on the real approval page: headless Chromium (Debian's chromium and
chromium-driver, installed by `make setup-browser`) opens the emailed link, served on
localhost by the real approval handler, reads the gate's facts and clicks Approve; the
execution resumes."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mq_cutover_cli.approval_http import serve
from mq_cutover_cli.live import live_run

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Skipped on a developer's machine without a browser; never in CI, where `make test` installs it.
pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver: run `make setup-browser`",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
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
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_approve_in_a_real_browser(browser: Any, ordered_plan: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    api_url = f"http://127.0.0.1:{port}/dev/approvals"
    with live_run(ordered_plan, approval_api_url=api_url) as run, serve(run.emulator, port):
        email = run.wait_for_gate("cutover")
        assert email.approve_link.startswith(api_url)
        browser.get(email.approve_link + "?decision=approve")
        assert browser.title == "Approve cutover?"
        facts = browser.find_element(By.ID, "facts").text
        assert "/mq-cutover/orders/checkout/broker-url  [now]" in facts
        assert "from ssl://onprem-mq.example.internal:61617" in facts
        assert browser.find_element(By.ID, "migration").text == "orders-2026-12-01"
        # Opening the page decided nothing.
        assert run.entered()[-1] == "Approve Cutover" and run.status()["status"] == "RUNNING"
        browser.find_element(By.ID, "name").send_keys("Ana Ops")
        browser.find_element(By.ID, "comment").send_keys("window confirmed")
        browser.find_element(By.ID, "approve").click()
        result = WebDriverWait(browser, 20).until(
            expected_conditions.presence_of_element_located((By.ID, "result"))
        )
        assert "approved by Ana Ops" in result.text
        run.wait_until("the run moved on", lambda: "Repoint Producers" in run.entered())
        # The browser's back-and-resubmit is refused: the gate is closed.
        browser.get(email.approve_link)
        assert "Already approved by Ana Ops" in browser.find_element(By.ID, "result").text
        run.api.post(
            run.wait_for_gate("stopOnPrem").approve_link, {"decision": "approve", "name": "Ana Ops"}
        )
        assert run.wait_until_done()["status"] == "SUCCEEDED"
