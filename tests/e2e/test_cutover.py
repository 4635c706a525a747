"""End-to-end: real ActiveMQ brokers, real STOMP clients, the real state machine.

Each scenario prints messages sent, received, lost, duplicated, out of order, and the longest
gap between deliveries. Run with `make e2e` (installs Debian's activemq first)."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.brokers import Broker, ensure_installed, running_brokers
from tests.e2e.scenario import run_cutover

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def brokers() -> Iterator[list[Broker]]:
    ensure_installed()
    with (
        tempfile.TemporaryDirectory(prefix="mq-cutover-e2e-") as root,
        running_brokers(Path(root), ["onprem", "amazonmq"]) as started,
    ):
        yield started


@pytest.fixture
def fresh(brokers: list[Broker]) -> list[Broker]:
    """Each scenario starts with the on-prem broker running (a previous one stopped it)."""
    onprem = brokers[0]
    if onprem.process is None or onprem.process.poll() is not None:
        onprem.start()
    return brokers


def test_ordered_nothing_lost_order_kept(fresh: list[Broker]) -> None:
    onprem, amazonmq = fresh
    outcome = run_cutover("ordered", onprem, amazonmq)
    print(f"\nordered: {outcome.line()}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == 10_000
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.out_of_order == 0
    # Every client really moved: producers and the consumer end on the stand-in broker.
    assert all(s[-1][1].endswith(".amazonaws.com:61614") for s in outcome.producer_switches)
    assert all(s[-1][1].endswith(".amazonaws.com:61614") for s in outcome.consumer_switches)
    assert outcome.states.index("Repoint Consumers") > outcome.states.index("Check Drain")


def test_unordered_nothing_lost_no_interruption(fresh: list[Broker]) -> None:
    onprem, amazonmq = fresh
    # Two consumers; with randomize one lands on each broker once widened (seeded choice).
    outcome = run_cutover("unordered", onprem, amazonmq, consumers=2)
    print(f"\nunordered: {outcome.line()}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == 10_000
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.longest_gap < 5.0
    widened = [s[1][1] for s in outcome.consumer_switches]  # where each went when widened
    assert any(w.endswith(".amazonaws.com:61614") for w in widened)
    assert any(w == f"127.0.0.1:{onprem.stomp_port}" for w in widened)
    assert all(s[-1][1].endswith(".amazonaws.com:61614") for s in outcome.consumer_switches)


def test_on_prem_restart_during_the_drain_loses_nothing(fresh: list[Broker]) -> None:
    onprem, amazonmq = fresh
    restart: dict[str, float] = {}

    def restart_once() -> None:
        if restart:
            return
        restart["began"] = time.time()

        def go() -> None:
            onprem.restart()
            restart["ended"] = time.time()

        threading.Thread(target=go, daemon=True).start()

    outcome = run_cutover("ordered", onprem, amazonmq, on_drain=restart_once)
    print(f"\nordered, on-prem restarted during the drain: {outcome.line()}")
    assert "ended" in restart and outcome.bridge_failures > 0  # it really was down a while
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.out_of_order == 0
    # The drain only passed once the broker was back and reporting again.
    drained = next(d for d in outcome.drains if d["drained"])
    assert datetime.fromisoformat(drained["checkedAt"]).timestamp() > restart["ended"]
