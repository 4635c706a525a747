"""End-to-end RabbitMQ cutovers: two real RabbitMQ nodes, the pika reference clients, the real
state machine in moto, the application's topology copied by the workflow (issue 14).

The world is `rabbit_scenario.py`'s: the on-prem node holds the application's exchange, durable
queues and bindings; the Amazon MQ stand-in starts empty (Copy Topology makes the cutover
possible); the clients reach the stand-in under the Amazon MQ endpoint's name (simulated DNS
and TLS) and the workflow reaches its management API under the console URL (simulated Amazon
MQ DNS/TLS for HTTP).

Each scenario prints sent, received, lost, duplicated, out of order (per producer and queue),
the longest gap between deliveries, and the messages left on each broker:

- ordered: 2 producers x 5,000 persistent messages over 3 queues, 1 consumer, the cutover gate
  approved by a person who sees the topology comparison: 0 lost, 0 out of order, 0 left;
- a rollback while messages flow: a simulated permanent fault in Check Drain after the
  producers went quiet on-prem: everything comes home, 0 lost, 0 left;
- the on-prem node restarted when the drain begins: 0 lost, the drain passes only once it is
  back.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.rabbit_nodes import RabbitNode
from tests.e2e.rabbit_scenario import (
    AMAZON_MQ_DOMAIN,
    PikaClients,
    RabbitKit,
    application_topology,
    declare_application_topology,
    expected_topology,
)
from tests.e2e.scenario import QUEUES, CheckDrainFault, Outcome, run_cutover

pytestmark = pytest.mark.e2e

PRODUCERS = 2
AMAZON_MQ_ENDPOINT = f"{AMAZON_MQ_DOMAIN}:5671"  # amqps, under the broker's host name


@pytest.fixture
def rabbit(fresh_rabbit: list[RabbitNode]) -> Iterator[list[RabbitNode]]:
    """Both nodes running and empty; the application's topology on the on-prem node only.
    Afterwards both are left running and clean (the stand-in without any topology)."""
    onprem, amazonmq = fresh_rabbit
    declare_application_topology(onprem, QUEUES)
    assert application_topology(amazonmq, QUEUES) == {
        "exchange": None,
        "queues": {},
        "bindings": [],
    }
    try:
        yield fresh_rabbit
    finally:
        for node in fresh_rabbit:
            if not node.running:
                node.start()
            node.reset_topology()


def on_amazonmq(endpoint: str) -> bool:
    return endpoint.endswith(AMAZON_MQ_ENDPOINT)


def sent_per_broker(outcome: Outcome, index: int) -> dict[str, int]:
    """How many of producer `index`'s messages went to each broker (the connection it had when
    the send was confirmed)."""
    switches = outcome.producer_switches[index]
    counts: Counter[str] = Counter()
    for _, _, at in outcome.sent_at[index]:
        where = [e for t, e in switches if t <= at]
        counts["amazonmq" if where and on_amazonmq(where[-1]) else "onprem"] += 1
    return dict(counts)


def timeline(outcome: Outcome) -> str:
    """When each step began, in seconds from the start of the execution (a step entered again
    and again, once)."""
    start = outcome.entered_at[0][0] if outcome.entered_at else 0.0
    seen: dict[str, float] = {}
    for at, name in outcome.entered_at:
        if not name.endswith("?"):
            seen.setdefault(name, at - start)
    return "steps: " + ", ".join(f"{name} {at:.0f}s" for name, at in seen.items())


def check_topology_copied(outcome: Outcome, kit: RabbitKit, amazonmq: RabbitNode) -> str:
    """Copy Topology ran once, found both brokers equal after the copy, and the stand-in now
    has the application's exchange, queues and bindings, written through the console URL."""
    copied = outcome.results("Copy Topology")
    assert len(copied) == 1, (outcome.status, outcome.states)
    result: dict[str, Any] = copied[0]
    assert result["matches"] is True, result
    assert result["differenceCount"] == 0, result
    assert application_topology(amazonmq, QUEUES) == expected_topology(QUEUES)
    writes = [r for r in kit.http.sent if not r.startswith("GET ")]
    assert writes, kit.http.sent  # the stand-in was written through the simulated DNS/TLS
    return f"Copy Topology: {result['summary']} ({len(kit.http.sent)} calls to the stand-in)"


def test_rabbit_ordered_nothing_lost_order_kept(rabbit: list[RabbitNode]) -> None:
    onprem, amazonmq = rabbit
    kit = RabbitKit(onprem, amazonmq)
    outcome = run_cutover(
        "ordered",
        onprem,
        amazonmq,
        PikaClients(onprem, amazonmq),
        producers=PRODUCERS,
        messages=5000,
        rate=400.0,
        gates=["cutover"],
        approve="auto",
        kit=kit,
    )
    print(f"\nrabbitmq ordered: {outcome.line()}")
    print(f"  {outcome.around_gap()}")
    print(f"  {check_topology_copied(outcome, kit, amazonmq)}")
    print(f"  sent per producer and broker: {[sent_per_broker(outcome, i) for i in (0, 1)]}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == PRODUCERS * 5000
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.out_of_order == 0, outcome.out_of_order_examples
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    # Every client really moved: producers and the consumer end on the stand-in, under the
    # Amazon MQ endpoint's name; the producers sent to both brokers.
    assert all(on_amazonmq(s[-1][1]) for s in outcome.producer_switches)
    assert all(on_amazonmq(s[-1][1]) for s in outcome.consumer_switches)
    assert all(set(sent_per_broker(outcome, i)) == {"onprem", "amazonmq"} for i in (0, 1))
    assert all(v.startswith("amqps://") for v in outcome.parameters_after.values())
    states = outcome.states
    assert states.index("Copy Topology") < states.index("Repoint Producers")
    assert states.index("Repoint Consumers") > states.index("Check Drain")
    # The person at the cutover gate saw the comparison, then approved.
    gate_emails = [e["message"] for e in outcome.approval_emails if "cutover" in e["subject"]]
    assert gate_emails, [e["subject"] for e in outcome.approval_emails]
    assert all("Topology on Amazon MQ: MATCHES" in m for m in gate_emails), gate_emails[0]
    assert ("cutover", "approve", 200) in [
        (d["gate"], d["decision"], d["postStatus"]) for d in outcome.decided
    ], outcome.decided
    assert not outcome.approver_errors, outcome.approver_errors


# Rollback: one reading per Check Drain call, so the simulated fault comes between two
# readings; timeouts lowered with it so the plan fits the history budget.
ROLLBACK_DRAIN = {
    "maxSecondsPerCheck": 1,
    "maxExtensions": 0,
    "timeoutMinutes": 5,
    "rollbackTimeoutMinutes": 5,
}
ROLLBACK_ACTIONS = [
    "drain onPrem",
    "consumers-to-amazon-mq",
    "fence onPrem",
    "producers-back",
    "drain amazonMq",
    "consumers-back",
    "done",
]
# Per producer, at 100 a second: sending lasts 80 s, past the end of the rollback (asserted);
# the execution starts after the first 5 %.
ROLLBACK_MESSAGES = 8000


def rollback_actions(outcome: Outcome) -> list[str]:
    done = [
        (
            f"{'fence' if r.get('purpose') == 'fence' else 'drain'} {r['side']}"
            if r["action"] == "drain"
            else r["action"]
        )
        for r in outcome.results("Roll Back")
    ]
    return [a for i, a in enumerate(done) if i == 0 or done[i - 1] != a]


def test_rabbit_rollback_while_messages_flow_loses_nothing(rabbit: list[RabbitNode]) -> None:
    onprem, amazonmq = rabbit
    # Amazon MQ's side read from its management API (target.metrics.source managementApi), as
    # for a RabbitMQ 4.x broker without per-queue metrics: no bridge on the stand-in.
    kit = RabbitKit(onprem, amazonmq, metrics_source="managementApi")
    fault = CheckDrainFault(after_quiet=True)
    outcome = run_cutover(
        "ordered",
        onprem,
        amazonmq,
        PikaClients(onprem, amazonmq),
        producers=PRODUCERS,
        messages=ROLLBACK_MESSAGES,
        rate=100.0,
        fault=fault,
        drain=ROLLBACK_DRAIN,
        kit=kit,
        head_start=0.05,
    )
    ended = max(r["exitedAt"] for r in outcome.results("Roll Back") if r["action"] == "done")
    last_sends = [max(at for _, _, at in sent) - ended for sent in outcome.sent_at]
    per_broker = [sent_per_broker(outcome, i) for i in (0, 1)]
    print(f"\nrabbitmq ordered, rollback during the drain: {outcome.line()}")
    print(f"  {outcome.around_gap()}")
    print(f"  {timeline(outcome)}")
    print(f"  {check_topology_copied(outcome, kit, amazonmq)}")
    print(
        f"  roll back: {rollback_actions(outcome)}; sent per producer and broker: {per_broker}; "
        f"producers sent until {min(last_sends):+.1f} s after the rollback ended"
    )
    status, states = outcome.status, outcome.states
    assert status["status"] == "FAILED", (status, outcome.drains[-1:])
    assert status.get("error") == "SimulatedPermanentFault", status
    assert fault.fired_at_call is not None and fault.message in status.get("cause", "")
    forward = outcome.results("Check Drain")
    assert forward and forward[-1]["producersQuiet"] and not forward[-1]["drained"], forward
    assert "Repoint Consumers" not in states and "Stop On-Prem" not in states, states
    assert rollback_actions(outcome) == ROLLBACK_ACTIONS, rollback_actions(outcome)
    assert states[-3:] == ["Rollback Next?", "Notify Rolled Back", "Rolled Back"], states[-6:]
    # Every parameter back at its on-prem value; the notification says Amazon MQ is empty.
    assert outcome.parameters_after == outcome.parameters_before, outcome.parameters_after
    (note,) = [n for n in outcome.notifications if n["subject"].endswith(": rolled back")]
    lines = note["message"].splitlines()
    # (0 left; the queues that held messages when the rollback's drain began are named after it)
    assert any(
        re.fullmatch(
            r"Drained Amazon MQ: \d+ message\(s\) at the start of the rollback drain, 0 left"
            r"( — .+)?",
            line,
        )
        for line in lines
    ), note["message"]
    # What is left on Amazon MQ at the end, read from its management API as the drain was.
    assert "Messages left on Amazon MQ: 0" in lines, note["message"]
    # The figures: messages flowed to Amazon MQ and back, and on after the rollback ended.
    assert outcome.sent == PRODUCERS * ROLLBACK_MESSAGES
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.out_of_order == 0, outcome.out_of_order_examples
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    assert all(counts.get("amazonmq", 0) > 0 for counts in per_broker), per_broker
    assert min(last_sends) > 0, (last_sends, "sending stopped before the rollback ended")
    # Every client ends on-prem; the consumer had been on Amazon MQ in between.
    assert all(not on_amazonmq(s[-1][1]) for s in outcome.producer_switches)
    (consumer,) = outcome.consumer_switches
    assert any(on_amazonmq(e) for _, e in consumer) and not on_amazonmq(consumer[-1][1]), consumer


def test_rabbit_on_prem_restart_during_the_drain_loses_nothing(rabbit: list[RabbitNode]) -> None:
    """The on-prem node restarts (a clean stop, then a start) when the drain begins: producers
    are on Amazon MQ, the consumer still empties on-prem and reconnects when it is back."""
    onprem, amazonmq = rabbit
    kit = RabbitKit(onprem, amazonmq)
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
        "ordered",
        onprem,
        amazonmq,
        PikaClients(onprem, amazonmq),
        producers=PRODUCERS,
        messages=2000,
        rate=200.0,
        on_drain=restart_once,
        kit=kit,
    )
    print(f"\nrabbitmq ordered, on-prem restarted during the drain: {outcome.line()}")
    print(f"  {outcome.around_gap()}")
    drains = outcome.results("Check Drain")
    drained = next((d for d in drains if d["drained"]), None)
    assert drained is not None, (outcome.status, drains[-1:])
    assert "ended" in restart and outcome.bridge_failures > 0  # it really was down a while
    passed_at = datetime.fromisoformat(drained["checkedAt"]).timestamp()
    print(
        f"  on-prem down {restart['ended'] - restart['began']:.1f} s from the drain's first "
        f"call; the drain passed {passed_at - restart['ended']:+.1f} s after it was back"
    )
    print(f"  {check_topology_copied(outcome, kit, amazonmq)}")
    assert outcome.status["status"] == "SUCCEEDED", (outcome.status, outcome.drains[-1:])
    assert outcome.sent == PRODUCERS * 2000
    assert outcome.lost == 0, outcome.lost_examples
    assert outcome.out_of_order == 0, outcome.out_of_order_examples
    assert (outcome.left_onprem, outcome.left_amazonmq) == (0, 0)
    assert passed_at > restart["ended"], drains  # only once it was back and reporting
    # The consumer reconnected to the restarted node before it moved to Amazon MQ.
    (consumer,) = outcome.consumer_switches
    on_prem_connections = [e for _, e in consumer if not on_amazonmq(e)]
    assert len(on_prem_connections) >= 2 and on_amazonmq(consumer[-1][1]), consumer
    assert all(on_amazonmq(s[-1][1]) for s in outcome.producer_switches)
