"""What approvers see at the timeout gates: the numbers on the right broker, by queue."""

from __future__ import annotations

from typing import Any

from mq_cutover.gate_facts import EXTENDABLE_GATES, GATE_TITLES, gate_facts, render_facts
from mq_cutover.plan import parse_plan

BROKER = {
    "brokerId": "b-1",
    "state": "RUNNING",
    "clientUrl": "failover:(ssl://amq-1:61617)",
    "endpoints": ["ssl://amq-1:61617"],
}


def test_every_timeout_gate_has_a_title_and_may_be_extended() -> None:
    for gate in ("placementTimeout", "drainTimeout", "fenceTimeout", "rollbackDrainTimeout"):
        assert gate in EXTENDABLE_GATES and gate in GATE_TITLES
    assert "cutover" not in EXTENDABLE_GATES and "stopOnPrem" not in EXTENDABLE_GATES


def test_a_rollback_drain_gate_shows_amazon_mq_and_what_will_never_drain(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    drain = {
        "side": "amazonMq",
        "messagesLeft": 40,
        "consecutiveEmpty": 0,
        "requiredEmpty": 3,
        "queuesWithMessages": [{"queue": "orders.paid", "messages": 40, "inFlight": 0}],
        "neverDrain": [{"queue": "orders.paid", "messages": 40}],
        "extensionsLeft": 2,
        "deadlineAt": "2026-12-01T03:00:00+00:00",
    }
    facts = gate_facts("rollbackDrainTimeout", parse_plan(ordered_plan), BROKER, drain, aws("ssm"))
    text = "\n".join(render_facts(facts))
    assert "Amazon MQ messages left: 40 (empty readings 0/3)" in text
    assert "orders.paid: WILL NEVER DRAIN (40 messages and no consumer on this broker)" in text
    assert any(step.startswith("Reject: the rollback stops here") for step in facts["next"])
    assert "On-prem messages left" not in text


def test_placement_and_fence_gates_name_the_queues(aws: Any, ordered_plan: dict[str, Any]) -> None:
    plan = parse_plan(ordered_plan)
    placement = {
        "side": "onPrem",
        "messagesLeft": 0,
        "unplaced": [{"queue": "orders.paid", "onPrem": 2, "amazonMq": 0}],
    }
    text = "\n".join(render_facts(gate_facts("placementTimeout", plan, BROKER, placement, None)))
    assert "orders.paid: consumers on-prem 2, on Amazon MQ 0 (needs at least 1 on each)" in text
    fence = {"side": "onPrem", "messagesLeft": 0, "connected": [{"queue": "q1", "consumers": 3}]}
    facts = gate_facts("fenceTimeout", plan, BROKER, fence, None)
    assert "q1: 3 consumer(s) STILL CONNECTED" in "\n".join(render_facts(facts))
    assert facts["title"] == "Clients are still on the on-prem broker: stop it anyway?"
