"""End-to-end: real ActiveMQ brokers, real STOMP clients, the real state machine.

Each scenario prints messages sent, received, lost, duplicated, out of order, the longest gap
between deliveries, and the messages left on each broker. Run with `make e2e` (installs
Debian's activemq first). The JMS clients' scenarios are in `test_jms_cutover.py`."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest

from tests.e2e.brokers import Broker
from tests.e2e.scenario import StompClients, run_cutover

pytestmark = pytest.mark.e2e


def test_ordered_nothing_lost_order_kept(fresh: list[Broker]) -> None:
    onprem, amazonmq = fresh
    outcome = run_cutover("ordered", onprem, amazonmq, StompClients(onprem, amazonmq))
    print(f"\nordered: {outcome.line()}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == 10_000
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.out_of_order == 0
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    # Every client really moved: producers and the consumer end on the stand-in broker.
    assert all(s[-1][1].endswith(".amazonaws.com:61614") for s in outcome.producer_switches)
    assert all(s[-1][1].endswith(".amazonaws.com:61614") for s in outcome.consumer_switches)
    assert outcome.states.index("Repoint Consumers") > outcome.states.index("Check Drain")


def test_unordered_nothing_lost_no_interruption(fresh: list[Broker]) -> None:
    onprem, amazonmq = fresh
    # Two consumers, widened in opposite orders (randomize=false): one lands on each broker.
    outcome = run_cutover(
        "unordered", onprem, amazonmq, StompClients(onprem, amazonmq), consumers=2
    )
    print(f"\nunordered: {outcome.line()}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == 10_000
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.longest_gap < 5.0
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    widened = [s[1][1] for s in outcome.consumer_switches]  # where each went when widened
    assert widened[0] == f"127.0.0.1:{onprem.stomp_port}"  # consumer 0: on-prem first
    assert widened[1].endswith(".amazonaws.com:61614")  # consumer 1: Amazon MQ first
    assert all(s[-1][1].endswith(".amazonaws.com:61614") for s in outcome.consumer_switches)
    states = outcome.states
    assert states.index("Check Placement") < states.index("Repoint Producers One By One")


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

    outcome = run_cutover(
        "ordered", onprem, amazonmq, StompClients(onprem, amazonmq), on_drain=restart_once
    )
    print(f"\nordered, on-prem restarted during the drain: {outcome.line()}")
    assert "ended" in restart and outcome.bridge_failures > 0  # it really was down a while
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.out_of_order == 0
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    # The drain only passed once the broker was back and reporting again.
    drained = next(d for d in outcome.drains if d["drained"])
    assert datetime.fromisoformat(drained["checkedAt"]).timestamp() > restart["ended"]
