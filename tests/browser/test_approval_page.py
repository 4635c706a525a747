"""A real browser on the real approval page, at a phone's size: headless Chromium (Debian's
chromium and chromium-driver, installed by `make setup-browser`) opens Ana's emailed link,
served on localhost by the real approval handler, at a gate where Bea has already voted. A
screenshot of the whole page is read back with OCR (Debian's tesseract-ocr): it must SHOW the
gate, a parameter from -> to, a queue's count, the tally and the time left, with nothing wider
than the screen. Then Ana approves and the execution resumes."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mq_cutover.plan import parse_plan
from mq_cutover_cli.approval_http import serve
from mq_cutover_cli.live import live_run
from mq_cutover_cli.world import default_world
from tests.browser.chromium import chromium, needs_browser, ocr, whole_page_screenshot

PHONE = {"width": 390, "height": 844, "pixelRatio": 2}  # CSS pixels of a common phone
pytestmark = needs_browser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile", flags=("--disable-quic",), phone=PHONE) as driver:
        yield driver


def test_a_phone_shows_the_facts_and_approves(
    browser: Any, ordered_plan: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    # One queue never drains: the drain times out and asks two people.
    ordered_plan["drain"] = {"pollIntervalSeconds": 60, "consecutiveEmptyReadings": 2}
    ordered_plan["drain"]["timeoutMinutes"] = 5
    ordered_plan["approvals"]["quorum"] = {"drainTimeout": 2}
    world = default_world(parse_plan(ordered_plan))
    world.queues[0].drain_per_minute = 0
    stuck = world.queues[0].name

    port = free_port()
    api_url = f"http://127.0.0.1:{port}/dev/approvals"
    with (
        live_run(ordered_plan, world=world, approval_api_url=api_url) as run,
        serve(run.emulator, port),
    ):
        run.api.post(run.wait_for_gate("cutover").approve_link, {"decision": "approve"})
        bea = run.wait_for_gate("drainTimeout", approver="bea")
        assert run.api.post(bea.approve_link, {"decision": "approve"})["statusCode"] == 200
        email = run.wait_for_gate("drainTimeout", approver="ana")
        assert email.approve_link.startswith(api_url) and email.approver == "ana"

        browser.get(email.approve_link + "?decision=approve")
        assert browser.title == "Approve drainTimeout?"
        assert browser.find_element(By.ID, "you").text.startswith("You are voting as Ana Ops")
        assert browser.find_elements(By.ID, "name") == []  # identity comes from the link
        assert browser.find_element(By.ID, "comment").get_attribute("maxlength") == "500"
        # Opening the page decided nothing.
        assert run.entered()[-1] == "Approve Drain Timeout" and run.status()["status"] == "RUNNING"

        # A phone: 390 CSS pixels wide, and nothing wider than that.
        width, inner = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert inner == PHONE["width"] and width <= inner, (width, inner)
        shot = whole_page_screenshot(browser, tmp_path / "approval-page-phone.png")
        print(f"\nscreenshot: {shot}")
        seen = ocr(shot)
        squeezed = seen.replace(" ", "").lower()
        assert "Approve drainTimeout?" in seen, seen
        assert "You are voting as Ana Ops" in seen, seen
        assert re.search(r"Approvals 1 of 2 \(1 more needed\)", seen), seen
        assert re.fullmatch(
            r"\d+ h \d+ min \(until \S+\)", browser.find_element(By.ID, "time-left").text
        )
        assert re.search(r"Time left \d+ ?h \S{1,2} min \(until 20", seen), seen
        # A parameter, from -> to (URLs wrap in their cell: read without spaces).
        assert "/mq-cutover/orders/fulfilment/broker-url" in squeezed, seen
        assert "fromssl://onprem-mq.example.internal:61617" in squeezed, seen
        assert "tofailover:(" in squeezed or "toamazonmq" in squeezed, seen
        # A queue's count on the on-prem broker.
        assert re.search(rf"{re.escape(stuck)} 3,?000 0", seen), seen

        browser.find_element(By.ID, "comment").send_keys("window confirmed")
        browser.find_element(By.ID, "approve").click()
        result = WebDriverWait(browser, 20).until(
            expected_conditions.presence_of_element_located((By.ID, "result"))
        )
        assert "approved by Bea Lead, Ana Ops" in result.text
        run.wait_until("the run moved on", lambda: "Repoint Consumers" in run.entered())
        # The browser's back-and-resubmit is refused: the gate is closed.
        browser.get(email.approve_link)
        assert "Already approved by Bea Lead, Ana Ops" in browser.find_element(By.ID, "result").text
        run.api.post(run.wait_for_gate("stopOnPrem").approve_link, {"decision": "approve"})
        assert run.wait_until_done()["status"] == "SUCCEEDED"
