"""End-to-end: real ActiveMQ brokers, real STOMP clients, the real state machine.

Each scenario prints messages sent, received, lost, duplicated, out of order, and the longest
gap between deliveries. Run with `make e2e` (installs Debian's activemq first)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
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
