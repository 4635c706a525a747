"""A real browser on the report page: `mq-cutover report --html` after a run that moved the
producers and consumers, was rejected at the stop gate and rolled back (so both brokers were
read). Headless Chromium (Debian's chromium and chromium-driver, `make setup-browser`) opens the
file; the chart must be drawn (one polyline per broker, one point per reading in the history)
and visible in a screenshot (pixels of each broker's colour inside the chart), and tesseract
must read the headings and the rejection."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mq_cutover_cli.cli import main
from mq_cutover_cli.harness import REGION
from mq_cutover_cli.harness import STACK_NAME as STACK
from mq_cutover_cli.live import live_run
from mq_cutover_cli.report_page import SIDES
from tests.browser.chromium import chromium, needs_browser, ocr, whole_page_screenshot

pytestmark = needs_browser


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile", flags=("--window-size=1200,1000",)) as driver:
        yield driver


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA bytes) of an 8-bit, non-interlaced RGB(A) PNG (what
    Chromium writes), decoded with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                best = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + best) & 0xFF
        rows.append(bytes(line) if channels == 4 else _rgba(bytes(line)))
        previous = line
    return width, height, rows


def _rgba(rgb: bytes) -> bytes:
    return b"".join(rgb[i : i + 3] + b"\xff" for i in range(0, len(rgb), 3))


def colour_pixels(rows: list[bytes], box: dict[str, float], colour: str) -> int:
    """Pixels of about `colour` (#rrggbb) inside `box` (CSS pixels at scale 1)."""
    want = bytes.fromhex(colour.lstrip("#"))
    found = 0
    for y in range(int(box["y"]), int(box["y"] + box["height"])):
        row = rows[y]
        for x in range(int(box["x"]), int(box["x"] + box["width"])):
            pixel = row[4 * x : 4 * x + 3]
            if all(abs(a - b) <= 24 for a, b in zip(pixel, want, strict=True)):
                found += 1
    return found


def test_the_report_page_draws_each_brokers_messages_over_time(
    browser: Any, ordered_plan: dict[str, Any], tmp_path: Path
) -> None:
    import boto3
    from selenium.webdriver.common.by import By

    migration = ordered_plan["migrationId"]
    json_path, html_path = tmp_path / "report.json", tmp_path / "report.html"
    with live_run(ordered_plan) as run:
        run.api.post(run.wait_for_gate("cutover").approve_link, {"decision": "approve"})
        bea = run.wait_for_gate("stopOnPrem", approver="bea")
        run.api.post(bea.reject_link, {"decision": "reject", "comment": "not tonight"})
        assert run.wait_until_done()["status"] == "FAILED"
        argv = ["report", migration, "--stack", STACK]
        argv += ["--json", str(json_path), "--html", str(html_path)]
        assert main(argv, session=boto3.session.Session(region_name=REGION)) == 0
    report = json.loads(json_path.read_text())
    readings = report["drainReadings"]
    assert set(readings) == {"onPrem", "amazonMq"}

    browser.get(html_path.as_uri())
    assert browser.title == f"Migration {migration}: FAILED"
    lines = browser.find_elements(By.CSS_SELECTOR, "svg polyline.series")
    assert sorted(line.get_attribute("data-side") for line in lines) == ["amazonMq", "onPrem"]
    for line in lines:
        side = line.get_attribute("data-side")
        points = line.get_attribute("points").split()
        assert len(points) == len(readings[side]), side  # one point per reading in the history
        box = browser.execute_script("return arguments[0].getBBox()", line)
        assert box["width"] > 100, (side, box)  # drawn across the time axis

    chart = browser.find_element(By.CSS_SELECTOR, "svg")
    box = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width,"
        " height: r.height}",
        chart,
    )
    shot = whole_page_screenshot(browser, tmp_path / "report-page.png")
    print(f"\nscreenshot: {shot}")
    _, _, rows = png_pixels(shot)
    for side, (_, colour) in SIDES.items():
        assert colour_pixels(rows, box, colour) > 200, side  # the line is visible

    seen = ocr(shot)
    for heading in ("Messages left on each broker", "Approvals", "Parameter changes"):
        assert heading in seen, seen
    assert "stopOnPrem rejected by Bea Lead: not tonight" in seen, seen
    assert "On-prem" in seen and "Amazon MQ" in seen, seen
